from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand

from apps.core.errors import DomainError
from apps.marketdata import gateway, store
from apps.marketdata.models import Subscription
from apps.marketdata.services import candles_import_arrays, market_ensure

DEMO_MARKETS = {"BTC/USDT": 65_000.0, "ETH/USDT": 3_200.0, "SOL/USDT": 150.0}
DEMO_TIMEFRAME = "1m"
DEMO_DAYS = 14
# Offline, these markets get a year of real hourly Binance candles shipped with the
# app (source in demo_data/README.md) instead of synthetic ones, so annualized
# figures mean something; the others are generated (and say so).
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "demo_data"
SAMPLE_TIMEFRAME = "1h"
SAMPLES = {"BTC/USDT": "binance_BTCUSDT_1h.csv.gz", "ETH/USDT": "binance_ETHUSDT_1h.csv.gz"}


def read_sample(symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """The shipped real candles of ``symbol``: (int64 ms open times, float64 (n, 5) OHLCV)."""
    with gzip.open(SAMPLE_DIR / SAMPLES[symbol], "rt") as handle:
        rows = np.loadtxt(handle, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    return rows[:, 0].astype(np.int64), np.ascontiguousarray(rows[:, 1:6])


def generate_candles(
    symbol: str, start_price: float, *, end_ms: int, days: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random walk of 1m candles ending at ``end_ms``: plausible, reproducible, clearly synthetic."""
    n = days * 1440
    rng = np.random.default_rng(sum(map(ord, symbol)))  # stable across runs (hash() is salted)
    ts = end_ms - (np.arange(n, 0, -1, dtype=np.int64) * 60_000)
    # ~0.08 % per-minute volatility with a gentle intraday cycle.
    returns = rng.normal(0, 0.0008, n) + 0.00002 * np.sin(np.arange(n) / 1440 * 2 * np.pi)
    close = start_price * np.exp(np.cumsum(returns))
    open_ = np.r_[start_price, close[:-1]]
    wiggle = np.abs(rng.normal(0, 0.0005, (2, n)))
    high = np.maximum(open_, close) * (1 + wiggle[0])
    low = np.minimum(open_, close) * (1 - wiggle[1])
    volume = rng.gamma(2.0, 5.0, n) * (100_000 / start_price)
    tick = 0.01
    ohlcv = np.column_stack([open_, high, low, close, volume])
    ohlcv[:, :4] = np.round(ohlcv[:, :4] / tick) * tick
    ohlcv[:, 1] = np.maximum(ohlcv[:, 1], ohlcv[:, [0, 3]].max(axis=1))
    ohlcv[:, 2] = np.minimum(ohlcv[:, 2], ohlcv[:, [0, 3]].min(axis=1))
    ohlcv[:, 4] = np.round(ohlcv[:, 4], 5)
    return ts, ohlcv


def offline_marker() -> Path:
    """The file that says the demo was seeded offline because the exchange was out of reach."""
    return Path(settings.VAR_DIR) / "demo-offline"


class Command(BaseCommand):
    help = (
        "Demo market data: candles for BTC/USDT, ETH/USDT and SOL/USDT, downloaded through ccxt when online; "
        "offline a year of real hourly BTC/USDT and ETH/USDT candles shipped with the app, SOL/USDT generated "
        "(says which); the demo user watches them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", help="email of the user who should watch the demo markets")
        parser.add_argument("--days", type=int, default=DEMO_DAYS)

    def handle(self, *args, **options):
        days = options["days"]
        now_ms = int(time.time() * 1000) // 60_000 * 60_000
        unreachable = downloaded = False
        for symbol, price in DEMO_MARKETS.items():
            market = market_ensure(exchange="binance", symbol=symbol)
            if any(
                store.last_open_time(market_id=market.id, timeframe=tf) is not None
                for tf in (DEMO_TIMEFRAME, SAMPLE_TIMEFRAME)
            ):
                self.stdout.write(f"{symbol}: demo candles already stored, left as they are")
                continue
            if gateway.online() and not unreachable:
                try:
                    from apps.marketdata.download import candles_download

                    report = candles_download(
                        exchange="binance",
                        symbol=symbol,
                        timeframe=DEMO_TIMEFRAME,
                        start=datetime.now(tz=UTC) - timedelta(days=days),
                    )
                    self.stdout.write(
                        f"{symbol}: downloaded {report.inserted} real candles through ccxt (online)"
                    )
                    downloaded = True
                    continue
                except DomainError as exc:
                    # One failed attempt (after the gateway's retries) is enough to know the
                    # exchange is out of reach: the other markets go straight to offline data.
                    unreachable = True
                    self.stdout.write(f"{symbol}: could not download ({exc.message}); using offline data")
            if symbol in SAMPLES:
                ts, ohlcv = read_sample(symbol)
                inserted = candles_import_arrays(
                    exchange="binance", symbol=symbol, timeframe=SAMPLE_TIMEFRAME, ts=ts, ohlcv=ohlcv
                )
                self.stdout.write(
                    f"{symbol}: imported {inserted} real {SAMPLE_TIMEFRAME} Binance candles shipped with the app "
                    "(offline; apps/marketdata/demo_data/README.md says where they come from)"
                )
                continue
            ts, ohlcv = generate_candles(symbol, price, end_ms=now_ms, days=days)
            inserted = candles_import_arrays(
                exchange="binance", symbol=symbol, timeframe=DEMO_TIMEFRAME, ts=ts, ohlcv=ohlcv
            )
            self.stdout.write(
                f"{symbol}: generated {inserted} synthetic {DEMO_TIMEFRAME} candles (offline: not real prices)"
            )
        # scripts/run.sh reads this: the app then runs offline on the data seeded here, so the demo
        # bot ticks on the replay feed instead of waiting for candles from an exchange out of reach.
        marker = offline_marker()
        if unreachable:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("the exchange could not be reached when the demo was seeded\n")
        elif downloaded:
            marker.unlink(missing_ok=True)
        if options.get("user"):
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.filter(email=options["user"]).first()
            if user is not None:
                for symbol in DEMO_MARKETS:
                    market = market_ensure(exchange="binance", symbol=symbol)
                    Subscription.objects.get_or_create(
                        user=user, market=market, defaults={"timeframe": "15m"}
                    )
                self.stdout.write(f"{user.email} watches {', '.join(DEMO_MARKETS)}")
