"""Candle timeframes: names as ccxt/Binance spell them, and their lengths."""

from __future__ import annotations

from datetime import UTC, datetime

from apps.marketdata.errors import UnknownTimeframe

MINUTE_MS = 60_000
# Lengths in milliseconds. "1M" (calendar month) has no fixed length; the value
# here is only used to order timeframes, never to step through time.
TIMEFRAME_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
    "3d": 3 * 1440 * MINUTE_MS,
    "1w": 7 * 1440 * MINUTE_MS,
    "1M": 31 * 1440 * MINUTE_MS,
}
TIMEFRAMES: tuple[str, ...] = tuple(TIMEFRAME_MS)
TIMEFRAME_CHOICES = [(name, name) for name in TIMEFRAMES]
MONTH = "1M"
# Binance starts weekly candles on Monday 00:00 UTC; 1970-01-05 was a Monday.
WEEK_ORIGIN_MS = 4 * 1440 * MINUTE_MS


def timeframe_ms(timeframe: str) -> int:
    """The length of ``timeframe`` in ms, or ``UnknownTimeframe``."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise UnknownTimeframe(
            f"Unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}.",
            fields={"timeframe": [f"unknown timeframe {timeframe!r}"]},
        ) from None


def validate_timeframe(timeframe: str) -> str:
    timeframe_ms(timeframe)
    return timeframe


def can_resample(source: str, target: str) -> bool:
    """True when whole ``source`` candles tile every ``target`` candle."""
    if source == target:
        return True
    if target == MONTH:
        # Calendar months are tiled by anything up to a day (days start at 00:00 UTC).
        return TIMEFRAME_MS[source] <= TIMEFRAME_MS["1d"]
    if source == MONTH:
        return False
    return TIMEFRAME_MS[target] % TIMEFRAME_MS[source] == 0 and TIMEFRAME_MS[target] > TIMEFRAME_MS[source]


def bucket_start(ts_ms, timeframe: str):
    """The open time of the ``timeframe`` candle containing ``ts_ms`` (int or int64 array)."""
    import numpy as np

    if timeframe == MONTH:
        months = np.asarray(ts_ms, dtype="datetime64[ms]").astype("datetime64[M]")
        out = months.astype("datetime64[ms]").astype(np.int64)
        return int(out) if np.ndim(out) == 0 else out
    step = TIMEFRAME_MS[timeframe]
    origin = WEEK_ORIGIN_MS if timeframe == "1w" else 0
    return (ts_ms - origin) // step * step + origin


def next_open(open_ms: int, timeframe: str) -> int:
    """Open time of the candle after the one opening at ``open_ms`` (a month has no fixed length)."""
    return int(bucket_start(open_ms + timeframe_ms(timeframe), timeframe))


def candles_between(last_ms: int, open_ms: int, timeframe: str) -> int:
    """How many ``timeframe`` candles open after ``last_ms``, up to and including ``open_ms``."""
    import numpy as np

    if timeframe == MONTH:
        months = np.array([last_ms, open_ms], dtype="datetime64[ms]").astype("datetime64[M]").astype(np.int64)
        return int(months[1] - months[0])
    return (open_ms - last_ms) // timeframe_ms(timeframe)


def ms_to_datetime(ms: int) -> datetime:
    """An open time in epoch milliseconds (how candles store it) as an aware UTC datetime."""
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
