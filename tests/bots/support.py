"""Candles for bot ticks: a short synthetic series whose last candle is a known SMA cross."""

from __future__ import annotations

import numpy as np

from apps.marketdata.timeframes import timeframe_ms
from tests.support.cache import clear_cache

# With sma_crossover fast=2, slow=3 the fast average crosses above the slow one on the
# last close (6.5 < 7 before, 8 > 7.67 on it): a long entry on the last closed candle.
CROSS_UP_CLOSES = [10.0, 9.0, 8.0, 7.0, 6.0, 10.0]
CROSS_PARAMS = {"fast": 2, "slow": 3}


def store_candles(
    *,
    last_open_ms: int,
    closes=CROSS_UP_CLOSES,
    timeframe: str = "1h",
    symbol: str = "BTC/USDT",
    exchange: str = "binance",
):
    """Store candles (market-data service) ending with the candle opening at ``last_open_ms``."""
    from apps.marketdata.services import candles_import_arrays

    step = timeframe_ms(timeframe)
    n = len(closes)
    ts = np.array([last_open_ms - (n - 1 - i) * step for i in range(n)], dtype=np.int64)
    close = np.array(closes, dtype=np.float64)
    ohlcv = np.column_stack([close, close * 1.01, close * 0.99, close, np.full(n, 1000.0)])
    candles_import_arrays(exchange=exchange, symbol=symbol, timeframe=timeframe, ts=ts, ohlcv=ohlcv)
    return ts


def store_candles_on_replay(
    *,
    closes=CROSS_UP_CLOSES,
    timeframe: str = "1h",
    symbol: str = "BTC/USDT",
    now_ms: int | None = None,
    speed: float | None = None,
) -> int:
    """Store candles so that the replay feed (offline) has just closed the last of ``closes``.

    The replay feed walks stored candles by position (``wall time * speed / step`` modulo the
    count), so the series is padded with flat candles before and after ``closes`` until
    ``closes[-1]`` sits at the position the feed closed last. Returns that candle's open time
    (the candle a bot ticks now). Open times end at the wall-clock candle, so nothing
    written here collides with other stored candles of the same market.
    """
    import time

    from django.conf import settings

    clear_cache()  # the feed caches its candle count per market; this series replaces it

    step = timeframe_ms(timeframe)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    speed = float(settings.MARKETDATA_REPLAY_SPEED) if speed is None else speed
    position = int(now_ms * speed / step) - 1  # the candle the feed closed last, before the modulo
    count = 2 * len(closes)
    while position % count < len(closes) - 1:
        count += 1
    end = position % count
    series = [closes[0]] * (end + 1 - len(closes)) + list(closes) + [closes[-1]] * (count - 1 - end)
    last_open = (now_ms // step - 1) * step
    ts = store_candles(last_open_ms=last_open, closes=series, timeframe=timeframe, symbol=symbol)
    return int(ts[end])
