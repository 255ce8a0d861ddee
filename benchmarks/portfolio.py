"""Portfolio API benchmark (PostgreSQL): p95 per endpoint for a user with a year of snapshots and
10,000 trades (target: p95 under 100 ms per call).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading_bench_portfolio \
        .venv/bin/python benchmarks/portfolio.py [--trades 10000] [--calls 40]
    ... benchmarks/portfolio.py --quick          # 2,000 trades, 15 calls per endpoint

The user gets one paper account with a year of tiered snapshots, as the beat job
and its compaction leave them (minute points for the last day, hourly for the
month before, daily for the rest of the year: ~2,500 rows per table), monthly
deposits, and ``--trades`` round trips (two fills each) spread over the year
across 5 bots and 3 symbols. Each endpoint is called ``--calls`` times through
Django's test client (the full DRF stack: auth, strict query, selector,
serializer); the first call is reported separately (it builds the cached round
trips), p50/p95/max over the rest. The user and its rows are deleted afterwards;
the load average is printed next to the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trading_bench_portfolio")

ENDPOINTS = [
    ("summary", {}),
    ("balances", {}),
    ("exposure", {}),
    ("positions", {}),
    ("equity-curve", {"days": 365}),
    ("drawdown", {"days": 365}),
    ("daily-pnl", {"days": 30}),
    ("daily-pnl", {"days": 365}),
    ("monthly-pnl", {"days": 365}),
    ("performance", {"days": 365}),
    ("trading-metrics", {}),
    ("trade-distribution", {}),
    ("comparison", {"by": "bot"}),
    ("comparison", {"by": "strategy"}),
    ("monthly-strategy", {}),
    ("cash-flows", {}),
]


def seed(trades: int):
    import numpy as np
    from django.contrib.auth import get_user_model

    from apps.bots.models import Bot
    from apps.exchanges.models import PaperAccount
    from apps.orders.models import Fill, Order
    from apps.portfolio.models import AccountSnapshot, CashFlow, EquitySnapshot, Tier

    user = get_user_model().objects.create_user(
        email=f"bench-portfolio-{uuid.uuid4().hex[:8]}@example.com", password="x"
    )
    account = PaperAccount.objects.create(user=user, initial_balances={"USDT": "10000"})
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    times = (
        [(now - timedelta(days=d), Tier.DAY) for d in range(365, 30, -1)]
        + [(now - timedelta(hours=h), Tier.HOUR) for h in range(30 * 24, 24, -1)]
        + [(now - timedelta(minutes=m), Tier.MINUTE) for m in range(24 * 60, -1, -1)]
    )
    rng = np.random.default_rng(1)
    equity = 10_000 * np.cumprod(1 + rng.normal(0.0002, 0.004, len(times)))
    snaps, accts = [], []
    for (when, tier), value in zip(times, equity, strict=True):
        eq = Decimal(f"{value:.8f}")
        btc = (eq * Decimal("0.4")).quantize(Decimal("0.00000001"))
        snaps.append(
            EquitySnapshot(
                owner=user,
                timestamp=when,
                equity=eq,
                cash=eq - btc,
                positions_value=btc,
                currency="USDT",
                tier=tier,
            )
        )
        accts.append(
            AccountSnapshot(
                owner=user,
                paper_account=account,
                timestamp=when,
                currency="USDT",
                equity=eq,
                cash=eq - btc,
                positions_value=btc,
                tier=tier,
                assets={
                    "USDT": {"amount": str(eq - btc), "price": "1", "value": str(eq - btc)},
                    "BTC": {"amount": str(btc / 60000), "price": "60000", "value": str(btc)},
                },
            )
        )
    EquitySnapshot.objects.bulk_create(snaps, batch_size=2000)
    AccountSnapshot.objects.bulk_create(accts, batch_size=2000)
    CashFlow.objects.bulk_create(
        CashFlow(
            owner=user,
            paper_account=account,
            timestamp=now - timedelta(days=365 - 30 * i),
            kind=CashFlow.Kind.OPENING if i == 0 else CashFlow.Kind.DEPOSIT,
            amount=Decimal(10_000 if i == 0 else 100),
            currency="USDT",
        )
        for i in range(12)
    )
    bots = [
        Bot.objects.create(
            owner=user,
            name=f"bench {i}",
            strategy=["dca", "sma_crossover"][i % 2],
            params={},
            exchange="binance",
            symbol="BTC/USDT",
            timeframe="1h",
        )
        for i in range(5)
    ]
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    start = now - timedelta(days=365)
    step = timedelta(days=365) / trades
    orders, fills = [], []
    for i in range(trades):
        bot, symbol = bots[i % 5], symbols[i % 3]
        entry = 100 + float(rng.normal(0, 5))
        exit_ = entry * (1 + float(rng.normal(0.001, 0.02)))
        for k, (side, price) in enumerate((("buy", entry), ("sell", exit_))):
            order = Order(
                owner=user,
                paper_account=account,
                bot=bot,
                exchange="binance",
                symbol=symbol,
                side=side,
                type="market",
                amount=Decimal(1),
                filled=Decimal(1),
                status="filled",
            )
            orders.append(order)
            fills.append((order, Decimal(f"{price:.6f}"), start + step * i + timedelta(seconds=30 * k)))
    Order.objects.bulk_create(orders, batch_size=2000)
    Fill.objects.bulk_create(
        [
            Fill(
                order=o,
                paper_account=account,
                price=p,
                amount=Decimal(1),
                fee=Decimal("0.01"),
                fee_asset="USDT",
                timestamp=t,
            )
            for o, p, t in fills
        ],
        batch_size=2000,
    )
    return user, len(snaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.trades, args.calls = 2_000, 15

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.urls import reverse
    from rest_framework.test import APIClient

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("this benchmark needs DATABASE_URL pointing at PostgreSQL")
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    began = time.perf_counter()
    user, points = seed(args.trades)
    print(
        f"seeded {points} snapshots per table and {args.trades} trades ({2 * args.trades} fills) "
        f"in {time.perf_counter() - began:.1f} s"
    )
    client = APIClient()
    client.force_authenticate(user)
    worst = 0.0
    try:
        print(f"{'endpoint':42} {'first':>8} {'p50':>8} {'p95':>8} {'max':>8}  (ms, {args.calls} calls)")
        for name, params in ENDPOINTS:
            url = reverse(f"portfolio-api:{name}")
            times = []
            for _ in range(args.calls + 1):
                t = time.perf_counter()
                response = client.get(url, params)
                times.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, (name, response.status_code, response.content[:300])
            first, rest = times[0], sorted(times[1:])
            p95 = rest[min(len(rest) - 1, round(0.95 * (len(rest) - 1)))]
            worst = max(worst, p95)
            label = name + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
            print(f"{label:42} {first:8.1f} {statistics.median(rest):8.1f} {p95:8.1f} {rest[-1]:8.1f}")
        print(f"worst p95: {worst:.1f} ms (target < 100 ms) — {'OK' if worst < 100 else 'OVER'}")
        print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        user.delete()


if __name__ == "__main__":
    main()
