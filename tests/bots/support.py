"""Candles for bot ticks: a short synthetic series whose last candle is a known SMA cross."""

from __future__ import annotations

import numpy as np

from apps.marketdata.timeframes import timeframe_ms

# With sma_crossover fast=2, slow=3 the fast average crosses above the slow one on the
# last close (6.5 < 7 before, 8 > 7.67 on it): a long entry on the last closed candle.
CROSS_UP_CLOSES = [10.0, 9.0, 8.0, 7.0, 6.0, 10.0]
CROSS_PARAMS = {"fast": 2, "slow": 3}


def store_candles(
    *, last_open_ms: int, closes=CROSS_UP_CLOSES, timeframe: str = "1h", symbol: str = "BTC/USDT"
):
    """Store candles (market-data service) ending with the candle opening at ``last_open_ms``."""
    from apps.marketdata.services import candles_import_arrays

    step = timeframe_ms(timeframe)
    n = len(closes)
    ts = np.array([last_open_ms - (n - 1 - i) * step for i in range(n)], dtype=np.int64)
    close = np.array(closes, dtype=np.float64)
    ohlcv = np.column_stack([close, close * 1.01, close * 0.99, close, np.full(n, 1000.0)])
    candles_import_arrays(exchange="binance", symbol=symbol, timeframe=timeframe, ts=ts, ohlcv=ohlcv)
    return ts
