"""Benchmark: a 1,000-combination SMA grid over one year of 1m candles on 2 Celery workers, checked
against a sequential sweep, and the results-page API of a finished run (results + downsampled
equity + first page of trades).

Targets: the grid (issue 10) in under 20 s with 2 workers, with the same best parameters as a
sequential sweep (every combination run alone, one after another, in this process); the
results page (issue 6) p95 under 100 ms.

Needs PostgreSQL and Redis (the real deployment path)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading_bench_optimize \\
    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python benchmarks/optimize.py

``--no-check`` skips the sequential sweep (it takes about as long as the grid on one
worker without the shared indicators: minutes); ``--combinations 100`` runs the
issue-6 grid. The database is created and migrated if missing. The year of 1m candles
(525,600) is built from real Binance BTC/USDT 1m candles of ``SHARED_DATA_DIR``
(no real file covers a whole year without holes): the real per-candle returns
and wick ratios are replayed in order, cycling through the file, into a
gap-free 2019 year of market ``BTC/USDT`` on exchange ``bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_ENV", "test")

YEAR_START_MS = 1_546_300_800_000  # 2019-01-01 UTC
MINUTES = 525_600
EXCHANGE, SYMBOL = "bench", "BTC/USDT"


def ensure_database() -> None:
    import environ
    import psycopg

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (and REDIS_URL): the benchmark uses real workers")
    if not os.environ.get("REDIS_URL"):
        sys.exit("set REDIS_URL")
    cfg = environ.Env.db_url_config(url)
    admin = psycopg.connect(
        host=cfg["HOST"] or "127.0.0.1",
        port=cfg["PORT"] or 5432,
        user=cfg["USER"],
        dbname="postgres",
        autocommit=True,
    )
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone()
    if not exists:
        admin.execute(f'CREATE DATABASE "{cfg["NAME"]}"')
    admin.close()


def year_of_candles():
    import numpy as np

    from apps.backtests.engine import load_csv

    shared = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))
    real = load_csv(shared / "ohlcv" / "binance_BTCUSDT_1m.csv.gz")
    close = real.close
    rets = close[1:] / close[:-1]
    # Returns across the file's coverage holes would be multi-month jumps: drop them.
    ok = np.diff(real.timestamp) == 60_000
    rets, hi_ratio, lo_ratio = (
        rets[ok],
        (real.high / np.maximum(real.open, real.close))[1:][ok],
        (real.low / np.minimum(real.open, real.close))[1:][ok],
    )
    vol = real.volume[1:][ok]
    idx = np.arange(MINUTES) % len(rets)
    closes = 3700.0 * np.cumprod(rets[idx])
    opens = np.concatenate(([3700.0], closes[:-1]))
    highs = np.maximum(opens, closes) * hi_ratio[idx]
    lows = np.minimum(opens, closes) * lo_ratio[idx]
    ts = YEAR_START_MS + np.arange(MINUTES, dtype=np.int64) * 60_000
    return ts, np.column_stack([opens, highs, lows, closes, vol[idx]])


def setup_data() -> None:
    from django.core.management import call_command

    from apps.marketdata.models import Candle
    from apps.marketdata.services import candles_import_arrays, market_ensure

    call_command("migrate", verbosity=0)
    market = market_ensure(exchange=EXCHANGE, symbol=SYMBOL, base="BTC", quote="USDT")
    if Candle.objects.filter(market=market, timeframe="1m").count() != MINUTES:
        started = time.perf_counter()
        ts, ohlcv = year_of_candles()
        candles_import_arrays(exchange=EXCHANGE, symbol=SYMBOL, timeframe="1m", ts=ts, ohlcv=ohlcv)
        print(f"imported {MINUTES} 1m candles in {time.perf_counter() - started:.1f} s")


def bench_user():
    from apps.accounts.models import User

    user, _ = User.objects.get_or_create(
        email="bench-optimize@example.com", defaults={"display_name": "bench"}
    )
    return user


BASE = {
    "exchange": EXCHANGE,
    "symbol": SYMBOL,
    "timeframe": "1m",
    "initial_cash": "10000",
    "fee": 0.001,
}


GRIDS = {
    # 20 fast x 50 slow windows (70 distinct moving averages), every combination valid.
    1000: {"fast": {"min": 5, "max": 100, "step": 5}, "slow": {"min": 110, "max": 600, "step": 10}},
    # The issue-6 grid: 10 x 10.
    100: {"fast": {"min": 5, "max": 50, "step": 5}, "slow": {"min": 60, "max": 240, "step": 20}},
}


def bench_grid(user, workers: int, combinations: int, check: bool) -> float:
    from apps.backtests.models import JobStatus, Optimization
    from apps.backtests.optimization import optimization_create
    from tests.support import servers

    body = {
        **BASE,
        "strategy": "sma_crossover",
        "kind": "grid",
        "space": GRIDS[combinations],
        "objective": "sharpe_ratio",
    }
    log_dir = ROOT / "var" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    from contextlib import ExitStack

    with ExitStack() as stack:
        for k in range(workers):
            stack.enter_context(
                servers.celery_worker(
                    concurrency=1,
                    hostname=f"bench{k}",
                    log_path=log_dir / f"worker{k}.log",
                    start_timeout=180,  # a loaded machine starts Django slowly
                )
            )
        # From the request to the finished sweep: planning, each worker's first read of
        # the candles, every chunk and the finalization are inside the time.
        started = time.perf_counter()
        opt = optimization_create(user=user, data=body)
        while True:
            opt.refresh_from_db()
            if opt.is_finished:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        # The lookahead check of the best parameters follows the sweep as its own task.
        while (opt.lookahead or {}).get("verdict") == "pending":
            time.sleep(0.05)
            opt.refresh_from_db()
        check_seconds = time.perf_counter() - started - seconds
    assert opt.status == JobStatus.COMPLETED, opt.error
    hosts = sorted(set(opt.trials.values_list("worker", flat=True)))
    print(
        f"grid: {opt.total} combinations x {MINUTES} 1m candles on {workers} workers: {seconds:.1f} s "
        f"(target < 20 s for 1,000), {opt.total / seconds:.1f} combinations/s; best {opt.best_params} "
        f"sharpe {opt.best_value:.6f}; chunks {opt.chunks_total}; workers used {len(hosts)}"
    )
    print(
        f"then the best parameters' lookahead check (a task after the sweep): {check_seconds:.1f} s, "
        f"verdict {opt.lookahead_verdict}"
    )
    if check:
        check_against_sequential_sweep(opt, combinations)
    Optimization.objects.filter(id=opt.id).delete()
    return seconds


def sequential_sweep(combinations: int) -> tuple[list[dict], float]:
    """Every combination of the grid run alone, one after another in this process: (trials, seconds).

    Stored in ``var/bench-logs/`` under a key of the candles, grid and config, so a rerun on
    the same data skips the minutes it takes (the seconds are those of the run that computed it).
    """
    import hashlib

    from apps.backtests.optimization import _clean_metrics, build_combinations, candles_digest
    from apps.backtests.services.runner import load_candles, strategy_run
    from apps.backtests.specs import parse_run_spec

    body = {**BASE, "strategy": "sma_crossover", "params": {}}
    spec = parse_run_spec(user=bench_user(), data=body, check_params=False)
    combos, _ = build_combinations(ref=spec.strategy, fixed={}, space=GRIDS[combinations])
    config = spec.config.to_dict()
    candles = load_candles(exchange=EXCHANGE, symbol=SYMBOL, timeframe="1m")
    key = hashlib.sha256(
        json.dumps([candles_digest(candles), combos, config], sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    path = ROOT / "var" / "bench-logs" / f"sequential-{combinations}-{key}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return saved["trials"], saved["seconds"]
    started = time.perf_counter()
    trials = []
    for k, params in enumerate(combos):
        result = strategy_run(
            kind="builtin", name="sma_crossover", params=params, candles=candles, config=config
        )
        # Through JSON, as a trial is stored: floats round-trip exactly.
        metrics = json.loads(json.dumps(_clean_metrics(result.metrics)))
        trials.append({"index": k, "params": params, "metrics": metrics})
    seconds = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"trials": trials, "seconds": seconds}))
    return trials, seconds


def check_against_sequential_sweep(opt, combinations: int) -> None:
    """The grid's trials against every combination run alone: same metrics, same best parameters."""
    from apps.backtests.optimization import best_trial

    trials, seconds = sequential_sweep(combinations)
    stored = {t.index: (t.params, t.metrics) for t in opt.trials.all()}
    mismatched = sum(stored.get(t["index"]) != (t["params"], t["metrics"]) for t in trials)
    best = best_trial(trials, objective=opt.objective, maximize=opt.maximize)
    same = best is not None and best["params"] == opt.best_params
    print(
        f"sequential sweep (each combination alone, 1 process): {seconds:.1f} s, "
        f"{len(trials) / seconds:.1f} combinations/s; best {best['params'] if best else None}: "
        f"{'EQUAL' if same else 'DIFFERENT'} to the grid's; combinations whose metrics differ: {mismatched}"
    )
    if not same or mismatched:
        sys.exit("the grid does not match the sequential sweep")


def bench_results_page(user, repeats: int) -> None:
    from django.test import Client

    from apps.backtests.models import BacktestRun
    from apps.backtests.services import backtest_create, backtest_execute

    run = (
        BacktestRun.objects.filter(owner=user, status="completed", timeframe="1m", exchange=EXCHANGE)
        .order_by("-id")
        .first()
    )
    if run is None:
        run = backtest_create(
            user=user,
            data={**BASE, "strategy": "sma_crossover", "params": {"fast": 20, "slow": 50}},
            enqueue=False,
        )
        started = time.perf_counter()
        backtest_execute(run_id=run.id)
        run.refresh_from_db()
        print(
            f"one run of {run.candles} candles, {run.total_trades} trades, executed and stored in {time.perf_counter() - started:.2f} s"
        )
    client = Client()
    client.force_login(user)
    base = f"/api/v1/backtests/{run.id}/"
    paths = [base + "results/", base + "equity/?points=1000", base + "trades/?page=1&page_size=50"]
    for path in paths:  # warm-up (connections, URL resolver, first imports)
        assert client.get(path).status_code == 200, path
    pages, per_path = [], {p: [] for p in paths}
    for _ in range(repeats):
        page_start = time.perf_counter()
        for path in paths:
            t = time.perf_counter()
            response = client.get(path)
            per_path[path].append(time.perf_counter() - t)
            assert response.status_code == 200
        pages.append(time.perf_counter() - page_start)

    def p95(values):
        return statistics.quantiles(values, n=20)[-1] * 1000

    print(
        f"results page (results + equity 1000 pts of {run.candles} + 50 of {run.total_trades} trades), "
        f"{repeats} loads: p50 {statistics.median(pages) * 1000:.1f} ms, p95 {p95(pages):.1f} ms (target < 100 ms)"
    )
    for path, values in per_path.items():
        print(
            f"  {path.removeprefix(base):32s} p50 {statistics.median(values) * 1000:6.1f} ms  p95 {p95(values):6.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--combinations", type=int, choices=sorted(GRIDS), default=1000)
    parser.add_argument("--no-check", action="store_true", help="skip the sequential sweep")
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--skip-page", action="store_true")
    parser.add_argument(
        "--sequential-only", action="store_true", help="only compute (and store) the sequential sweep"
    )
    args = parser.parse_args()
    ensure_database()
    import django

    django.setup()
    setup_data()
    user = bench_user()
    print(f"machine: {os.cpu_count()} cores (shared with other work: timings are noisy)")
    if args.sequential_only:
        trials, seconds = sequential_sweep(args.combinations)
        print(f"sequential sweep of {len(trials)} combinations: {seconds:.1f} s")
        return
    if not args.skip_grid:
        bench_grid(user, args.workers, args.combinations, check=not args.no_check)
    if not args.skip_page:
        bench_results_page(user, args.repeats)


if __name__ == "__main__":
    main()
