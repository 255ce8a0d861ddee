"""Risk benchmark (PostgreSQL): the pre-trade check's latency and the monitor's throughput.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading_risk \
        .venv/bin/python benchmarks/risk.py [--users 1000] [--workers 2]

* Pre-trade: what ``order_place`` adds for the risk check (``apps.risk.pretrade.order_check``:
  load the limits and the exposure, run the rules) for a user with 50 limits, 200 open
  positions and 50 open orders; p50/p95/max over 500 checks. Target: p95 < 5 ms.
* Monitor: ``risk_monitor_users`` for N users (each a paper account, 3 positions, 2 limits,
  a year of daily prices for VaR) split over W worker processes, as the beat's chunks are
  over W Celery workers. Target: 1,000 users < 30 s on 2 workers.

The database in DATABASE_URL is migrated if needed; the benchmark's users and markets are
deleted afterwards. The machine is shared, so timings are noisy.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trading_risk")

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
TAG = "riskbench"


def ensure_database() -> None:
    import environ
    import psycopg

    config = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    if config["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("this benchmark needs DATABASE_URL pointing at PostgreSQL")
    conninfo = {
        "host": config.get("HOST") or "127.0.0.1",
        "port": config.get("PORT") or 5432,
        "user": config.get("USER") or "postgres",
        "dbname": "postgres",
    }
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{config["NAME"]}"')


def setup_django() -> None:
    import django

    django.setup()


def make_user(email: str):
    from apps.accounts.models import User

    return User.objects.create_user(email=email, password=None)


def pretrade_benchmark() -> dict:
    from apps.exchanges.models import PaperAccount, PaperBalance
    from apps.orders.models import Order, Position
    from apps.risk import pretrade
    from apps.risk.models import LimitKind, RiskLimit

    user = make_user(f"{TAG}-pre-{uuid.uuid4().hex[:8]}@example.com")
    try:
        account = PaperAccount.objects.create(user=user, initial_balances={"USDT": "10000000"})
        PaperBalance.objects.create(account=account, asset="USDT", free=Decimal("10000000"))
        Position.objects.bulk_create(
            Position(
                owner=user,
                paper_account=account,
                symbol=f"A{i}/USDT",
                side="long",
                size=Decimal("1"),
                average_entry=Decimal("100"),
                mark_price=Decimal("101"),
            )
            for i in range(200)
        )
        Order.objects.bulk_create(
            Order(
                owner=user,
                paper_account=account,
                exchange="binance",
                symbol=f"A{i}/USDT",
                side="buy",
                type="limit",
                amount=Decimal("1"),
                price=Decimal("90"),
                status="open",
                client_order_id=f"b{i}",
            )
            for i in range(50)
        )
        kinds = list(LimitKind.values)
        generous = {
            "position_quantity": "1000000", "position_notional": "1e12", "order_notional": "1e12",
            "open_orders": "10000", "leverage": "100", "asset_exposure": "100", "total_exposure": "100",
            "daily_loss": "1e12", "drawdown": "0.99", "losing_streak": "1000",
        }  # fmt: skip
        RiskLimit.objects.bulk_create(
            RiskLimit(
                owner=user,
                kind=kinds[i % len(kinds)],
                value=Decimal(generous[kinds[i % len(kinds)]]),
                symbol="" if i % 3 else f"A{i}/USDT",
            )
            for i in range(50)
        )
        key = f"paper:{account.pk}"
        timings = []
        for i in range(520):
            started = time.perf_counter()
            breaches = pretrade.order_check(
                owner_id=user.pk, account_key=key, symbol=f"A{i % 200}/USDT", side="buy", amount=Decimal("0.5"),
                price=Decimal("101"), user_timezone="UTC",
            )  # fmt: skip
            timings.append((time.perf_counter() - started) * 1000)
            assert not breaches, breaches
        timings = sorted(timings[20:])  # the first calls warm the connection and caches
        # The machine's state: one trivial round trip to PostgreSQL, and the rules alone (no database).
        from django.db import connection

        from apps.risk import checks, selectors

        trips = []
        with connection.cursor() as cursor:
            for _ in range(200):
                started = time.perf_counter()
                cursor.execute("SELECT 1")
                cursor.fetchone()
                trips.append((time.perf_counter() - started) * 1000)
        profile, limits = selectors.risk_limits_for_check(owner_id=user.pk)
        exposure = selectors.risk_exposure(owner_id=user.pk, profile=profile)
        intent = checks.OrderIntent("A7/USDT", "buy", Decimal("0.5"), Decimal("101"), key)
        rules = []
        for _ in range(200):
            started = time.perf_counter()
            checks.order_breaches(intent, limits, exposure)
            rules.append((time.perf_counter() - started) * 1000)
        return {
            "select1_p50": statistics.median(trips),
            "rules_p50": statistics.median(rules),
            "p50": statistics.median(timings),
            "p95": timings[int(len(timings) * 0.95) - 1],
            "max": timings[-1],
        }
    finally:
        user.delete()


def _prices() -> None:
    import numpy as np

    from apps.marketdata import services as marketdata

    rng = np.random.default_rng(7)
    start = 1_700_006_400_000
    for symbol in SYMBOLS:
        closes = 100 * np.cumprod(1 + rng.normal(0, 0.03, 366))
        ts = np.array([start + i * 86_400_000 for i in range(366)], dtype=np.int64)
        marketdata.candles_import_arrays(
            exchange="binance", symbol=symbol, timeframe="1d", ts=ts,
            ohlcv=np.column_stack([closes, closes, closes, closes, np.ones(366)]),
        )  # fmt: skip


def monitor_setup(n: int) -> list[int]:
    from apps.accounts.models import User
    from apps.exchanges.models import PaperAccount, PaperBalance
    from apps.orders.models import Position
    from apps.risk.models import RiskLimit

    run = uuid.uuid4().hex[:6]
    users = User.objects.bulk_create(
        User(email=f"{TAG}-{run}-{i}@example.com", password="!") for i in range(n)
    )
    accounts = PaperAccount.objects.bulk_create(PaperAccount(user=u, initial_balances={}) for u in users)
    PaperBalance.objects.bulk_create(
        PaperBalance(account=a, asset=asset, free=Decimal(amount))
        for a in accounts
        for asset, amount in (("USDT", "10000"), ("BTC", "1"), ("ETH", "2"), ("SOL", "5"))
    )
    Position.objects.bulk_create(
        Position(
            owner=u,
            paper_account=a,
            symbol=s,
            side="long",
            size=Decimal(size),
            average_entry=Decimal("100"),
            mark_price=Decimal("102"),
            unrealized_pnl=Decimal(size) * 2,
        )
        for u, a in zip(users, accounts, strict=True)
        for s, size in zip(SYMBOLS, ("1", "2", "5"), strict=True)
    )
    RiskLimit.objects.bulk_create(
        RiskLimit(owner=u, kind=kind, value=Decimal(value))
        for u in users
        for kind, value in (("daily_loss", "500"), ("asset_exposure", "0.5"))
    )
    return [u.pk for u in users]


def _worker(user_ids: list[int], queue) -> None:
    setup_django()
    from django.db import connection

    from apps.risk import monitoring

    started = time.perf_counter()
    chunk = monitoring.CHUNK_SIZE
    done = 0
    for i in range(0, len(user_ids), chunk):  # one Celery task per chunk, as risk_monitor_all sends them
        done += monitoring.risk_monitor_users(user_ids=user_ids[i : i + chunk])
    connection.close()
    queue.put((done, time.perf_counter() - started))


def _pass(halves: list[list[int]]) -> tuple[int, float]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    started = time.perf_counter()
    procs = [ctx.Process(target=_worker, args=(half, queue)) for half in halves]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(r[0] for r in results), time.perf_counter() - started


def monitor_benchmark(n: int, workers: int) -> dict:
    from django.db import connection

    from apps.risk.monitoring import users_to_monitor

    ids = monitor_setup(n)
    assert set(ids) <= set(users_to_monitor())
    connection.close()  # the workers are separate processes with their own connections
    halves = [ids[w::workers] for w in range(workers)]
    # The first pass creates every user's risk state and fills the workers' caches; the beat's
    # every-minute runs look like the second. Worker start-up (Django setup) is inside both.
    cold_done, cold = _pass(halves)
    done, steady = _pass(halves)
    return {"users": n, "workers": workers, "done": min(done, cold_done), "cold_s": cold, "wall_s": steady,
            "per_user_ms": steady * workers / n * 1000, "ids": ids}  # fmt: skip


def cleanup(ids: list[int]) -> None:
    from apps.accounts.models import User

    User.objects.filter(pk__in=ids).delete()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ensure_database()
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _prices()
    pre = pretrade_benchmark()
    print("risk benchmark (PostgreSQL, shared 2-core machine: timings are noisy)")
    print(
        f"pre-trade check, 50 limits, 200 positions, 50 open orders: p50 {pre['p50']:.2f} ms, "
        f"p95 {pre['p95']:.2f} ms, max {pre['max']:.2f} ms (target p95 < 5 ms)"
    )
    print(
        f"  of which the rules alone (no database): p50 {pre['rules_p50']:.2f} ms; "
        f"a bare SELECT 1 round trip on this machine now: p50 {pre['select1_p50']:.2f} ms"
    )
    mon = monitor_benchmark(args.users, args.workers)
    try:
        print(
            f"monitor: {mon['done']}/{mon['users']} users on {mon['workers']} worker processes in "
            f"{mon['wall_s']:.1f} s ({mon['per_user_ms']:.1f} ms per user per worker; target < 30 s for 1,000 on 2); "
            f"first pass (creating each user's risk state) {mon['cold_s']:.1f} s"
        )
    finally:
        cleanup(mon["ids"])


if __name__ == "__main__":
    main()
