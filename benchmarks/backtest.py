"""Backtest engine benchmark (issue 5 "Speed"); prints every figure, medians of 3.

Run from the repository root::

    .venv/bin/python benchmarks/backtest.py [--candles 525600] [--repeat 3]

Data: one year of one-minute candles (525,600) from a seeded random walk, since
the longest real 1m file in shared data has about 214k rows (that file is also
timed when present, for reference).

Figures:
* SMA(20)/SMA(50) crossover, 0.1% fee, next-open fills, 100% of equity: the
  engine's whole run (indicators, signals, simulation, trades, equity, every
  metric) against a plain numpy computation of the same strategy in this run,
  with their ratio; both must agree on the trade count and final equity.
* The first backtest in a fresh Python process, imports included.
* An event strategy with a trivial per-candle callback, in candles per second.
* The grid (10 levels) and DCA built-ins, when the strategies package has them.
* Peak memory (max RSS) of this process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps.backtests.engine import (
    BacktestConfig,
    Candles,
    Signals,
    SignalStrategy,
    Strategy,
    load_csv,
    run_backtest,
)

FEE = 0.001
FAST, SLOW = 20, 50


def random_walk(n: int, seed: int = 42) -> Candles:
    """Seeded one-minute random walk starting at 30,000 with realistic wicks."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    open_ = np.concatenate(([30_000.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.0004, (2, n)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    ts = 1_672_531_200_000 + np.arange(n, dtype=np.int64) * 60_000  # 2023-01-01 UTC
    return Candles.from_arrays(ts, open_, high, low, close, rng.uniform(1.0, 50.0, n))


def sma(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    c = np.cumsum(x)
    out[n - 1 :] = (c[n - 1 :] - np.concatenate(([0.0], c[:-n]))) / n
    return out


class SmaCross(SignalStrategy):
    """The benchmark's own SMA crossover (so the figure does not depend on part B's indicators)."""

    name = "bench_sma"

    def signals(self, data: Candles) -> Signals:
        above = sma(data.close, FAST) > sma(data.close, SLOW)
        prev = np.concatenate(([False], above[:-1]))
        return Signals(long_entries=above & ~prev, long_exits=~above & prev)


def numpy_sma_crossover(c: Candles, cash: float) -> tuple[int, float]:
    """Plain numpy: same signals, fills at the next open, 0.1% fee each way, compounding."""
    above = sma(c.close, FAST) > sma(c.close, SLOW)
    prev = np.concatenate(([False], above[:-1]))
    held = np.concatenate(([False], above[:-1]))  # in position during candle t (entered at its open)
    entries = np.flatnonzero(held & ~np.concatenate(([False], held[:-1])))
    exits = np.flatnonzero(~held & np.concatenate(([False], held[:-1])))
    if len(exits) < len(entries):
        exits = np.append(exits, -1)
    exit_px = np.where(exits >= 0, c.open[exits], c.close[-1])
    growth = (exit_px / c.open[entries]) * (1 - FEE) / (1 + FEE)
    equity_at_exit = cash * np.cumprod(growth)
    # Per-candle equity curve and drawdown, as the engine produces them.
    trade_of = np.cumsum(np.isin(np.arange(len(c)), entries)) - 1
    qty = np.concatenate(([cash], equity_at_exit[:-1])) / (1 + FEE) / c.open[entries]
    safe = np.maximum(trade_of, 0)
    cur = np.where(held, qty[safe] * c.close, 0.0)
    base = np.where(trade_of >= 0, np.where(held, 0.0, equity_at_exit[safe]), cash)
    equity = base + cur
    dd = equity / np.maximum.accumulate(equity) - 1
    _ = (dd.min(), prev)
    return len(entries), float(equity_at_exit[-1])


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


class Trivial(Strategy):
    name = "bench_trivial"

    def on_data(self, candle) -> None:
        pass


FRESH = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import numpy as np
from apps.backtests.engine import BacktestConfig, Candles, run_backtest
from apps.backtests.strategies.registry import build_strategy
a = np.load({path!r})
c = Candles.from_arrays(a[0].astype(np.int64), a[1], a[2], a[3], a[4], a[5])
r = run_backtest(c, build_strategy("sma_crossover", {{"fast": 20, "slow": 50}}), BacktestConfig(fee=0.001))
import resource
print(time.perf_counter() - t0, r.metrics["total_trades"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""

FRESH_ENGINE_ONLY = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
import numpy as np
from backtest import SmaCross
from apps.backtests.engine import BacktestConfig, Candles, run_backtest
a = np.load({path!r})
c = Candles.from_arrays(a[0].astype(np.int64), a[1], a[2], a[3], a[4], a[5])
r = run_backtest(c, SmaCross(), BacktestConfig(fee=0.001))
import resource
print(time.perf_counter() - t0, r.metrics["total_trades"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def fresh_process(candles: Candles, repeat: int, script: str) -> tuple[float, float, str]:
    """Wall time of a new interpreter running one backtest (startup + imports + run)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "candles.npy")
        np.save(
            path,
            np.vstack(
                [
                    candles.timestamp.astype(np.float64),
                    candles.open,
                    candles.high,
                    candles.low,
                    candles.close,
                    candles.volume,
                ]
            ),
        )
        code = script.format(root=str(ROOT), path=path, bench=str(Path(__file__).parent))
        walls, inner, out = [], [], ""
        for _ in range(repeat):
            t = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=False,
            )
            walls.append(time.perf_counter() - t)
            if proc.returncode != 0:
                return float("nan"), float("nan"), proc.stderr.strip().splitlines()[-1]
            out = proc.stdout.split()
            inner.append(float(out[0]))
        return (
            statistics.median(walls),
            statistics.median(inner),
            f"{out[1]} trades, peak RSS {out[2]} MiB",
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candles", type=int, default=525_600)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, repeat = args.candles, args.repeat
    candles = random_walk(n)
    print(
        f"data: seeded random walk, {n:,} one-minute candles; medians of {repeat}; 2 shared cores, timings are noisy"
    )

    config = BacktestConfig(fee=FEE)
    run_backtest(candles.slice(0, 1000), SmaCross(), config)  # warm numpy's code paths once
    t_np, (np_trades, np_equity) = timed(lambda: numpy_sma_crossover(candles, config.initial_cash), repeat)
    t_engine, result = timed(lambda: run_backtest(candles, SmaCross(), config), repeat)
    m = result.metrics
    print(
        f"SMA({FAST})/SMA({SLOW}) crossover, engine whole run: {t_engine:.4f} s "
        f"({m['total_trades']} trades, final equity {m['end_equity']:.2f}, {len(m)} metrics, path {result.info['path']})"
    )
    print(
        f"SMA crossover, plain numpy:                {t_np:.4f} s ({np_trades} trades, final equity {np_equity:.2f})"
    )
    print(f"ratio engine / numpy:                      {t_engine / t_np:.2f}x")
    agree = np_trades == m["total_trades"] and abs(np_equity / m["end_equity"] - 1) < 1e-9
    print(f"engine and numpy agree on trades and final equity: {agree}")

    try:
        from apps.backtests.strategies.registry import build_strategy
    except ImportError:
        build_strategy = None
    if build_strategy is not None:
        t_b, r_b = timed(
            lambda: run_backtest(
                candles,
                build_strategy("sma_crossover", {"fast": FAST, "slow": SLOW}),
                config,
            ),
            repeat,
        )
        print(
            f"SMA crossover, built-in sma_crossover:     {t_b:.4f} s ({r_b.metrics['total_trades']} trades)"
        )

    wall, inner, trades = fresh_process(candles, repeat, FRESH_ENGINE_ONLY)
    print(
        f"first backtest in a fresh process (engine + numpy strategy): {wall:.3f} s wall incl. interpreter start; {inner:.3f} s imports+run ({trades})"
    )
    if build_strategy is not None:
        wall, inner, trades = fresh_process(candles, repeat, FRESH)
        print(
            f"first backtest in a fresh process (registry sma_crossover):  {wall:.3f} s wall incl. interpreter start; {inner:.3f} s imports+run ({trades})"
        )

    t_ev, _ = timed(lambda: run_backtest(candles, Trivial(), config), repeat)
    print(f"event strategy, trivial callback: {t_ev:.3f} s = {n / t_ev:,.0f} candles/s")

    if build_strategy is not None:
        for name, params in (("grid", {"levels": 10}), ("dca", {})):
            try:
                strat = build_strategy(name, params)
            except Exception as exc:
                print(f"{name}: not available ({exc})")
                continue
            t_s, r_s = timed(
                lambda name=name, params=params: run_backtest(candles, build_strategy(name, params), config),
                repeat,
            )
            del strat
            print(
                f"{name} {params}: {t_s:.3f} s ({r_s.metrics['total_trades']} trades, {r_s.info.get('fills')} fills)"
            )

    real = ROOT.parent / "shared" / "data" / "ohlcv" / "binance_BTCUSDT_1m.csv.gz"
    real = Path(os.environ.get("SHARED_DATA_DIR", real.parent.parent)) / "ohlcv" / "binance_BTCUSDT_1m.csv.gz"
    if real.exists():
        btc = load_csv(real)
        t_r, r_r = timed(lambda: run_backtest(btc, SmaCross(), config), repeat)
        print(
            f"real BTCUSDT 1m ({len(btc):,} candles), SMA crossover: {t_r:.4f} s ({r_r.metrics['total_trades']} trades)"
        )

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS of this process): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
