"""Helpers for the backtests product tests: real candles in the store, polling, JWT WebSockets."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from apps.backtests.engine import load_csv

SYMBOL = "BTC/USDT"

SMA_BODY = {
    "strategy": "sma_crossover",
    "params": {"fast": 10, "slow": 30},
    "exchange": "binance",
    "symbol": SYMBOL,
    "timeframe": "1h",
    "start": "2024-01-01T00:00:00Z",
    "end": "2024-07-01T00:00:00Z",
    "initial_cash": "10000",
    "fee": 0.001,
}

USER_SIGNAL_CODE = """
class MyCross(SignalStrategy):
    name = "my_cross"
    description = "SMA cross written by a user"
    params = {"fast": Param("int", 10, min=2, max=200), "slow": Param("int", 30, min=3, max=400)}

    def signals(self, data):
        fast = indicators.sma(data.close, self.p.fast)
        slow = indicators.sma(data.close, self.p.slow)
        return Signals(long_entries=indicators.crossed_above(fast, slow),
                       long_exits=indicators.crossed_below(fast, slow))
"""

USER_BROKEN_CODE = """
class Broken(Strategy):
    name = "broken"

    def on_data(self, candle):
        if candle.close > 0:
            x = 1 / 0
"""


@functools.cache
def _real_candles(path: str):
    import numpy as np

    candles = load_csv(path).between(1_672_531_200_000, 1_735_689_600_000)  # 2023-01-01 .. 2025-01-01
    ohlcv = np.column_stack([candles.open, candles.high, candles.low, candles.close, candles.volume])
    return candles.timestamp, ohlcv


def import_candles(shared_data_dir: Path, timeframe: str = "1h", symbol: str = SYMBOL) -> None:
    """Real Binance candles into the store (market-data service), 2023-2024 only: fast and enough."""
    from apps.marketdata.services import candles_import_arrays

    file = shared_data_dir / "ohlcv" / f"binance_{symbol.replace('/', '')}_{timeframe}.csv.gz"
    ts, ohlcv = _real_candles(str(file))  # parsed once per test session
    candles_import_arrays(exchange="binance", symbol=symbol, timeframe=timeframe, ts=ts, ohlcv=ohlcv)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def post_in_thread(client, url: str, body: dict):
    """``client.post`` for ``asyncio.to_thread``: closes the thread's DB connection afterwards,
    or the test database could not be dropped at the end of the session."""
    from django.db import connections

    try:
        return client.post(url, body, format="json")
    finally:
        connections.close_all()
