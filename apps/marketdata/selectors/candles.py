"""Candles from the store as the engine's ``Candles`` (the platform's one in-memory candle container).

``candles()`` is what backtests, bots, risk and portfolio call; it never builds
per-row ORM objects (see ``store.read``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from apps.backtests.engine.candles import Candles
from apps.core.errors import ValidationFailed
from apps.marketdata import store
from apps.marketdata.errors import NoCandles
from apps.marketdata.models import Candle, Market
from apps.marketdata.resample import resample_arrays
from apps.marketdata.selectors.markets import market_get
from apps.marketdata.timeframes import TIMEFRAMES, bucket_start, can_resample, timeframe_ms


def _to_ms(value: datetime | int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise ValidationFailed(f"{name} must be a datetime.", fields={name: ["must be a datetime"]})
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # naive means UTC throughout the platform
    return int(value.timestamp() * 1000)


def _check_range(start_ms: int | None, end_ms: int | None) -> None:
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ValidationFailed(
            "start must not be after end.", fields={"start": ["start must not be after end"]}
        )


def resolve_source_timeframe(*, market: Market, timeframe: str) -> str:
    """The stored timeframe to read for ``timeframe``: itself, else the finest that tiles it."""
    timeframe_ms(timeframe)
    if Candle.objects.filter(market=market, timeframe=timeframe).exists():
        return timeframe
    for source in TIMEFRAMES:
        if (
            source != timeframe
            and can_resample(source, timeframe)
            and Candle.objects.filter(market=market, timeframe=source).exists()
        ):
            return source
    raise NoCandles(
        f"No {timeframe} candles (and no finer timeframe to build them from) are stored for "
        f"{market.exchange.slug} {market.symbol}.",
        fields={"timeframe": [f"no candles stored for {timeframe}"]},
    )


def candles(
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    start: datetime | int | None = None,
    end: datetime | int | None = None,
    limit: int | None = None,
) -> Candles:
    """Stored candles for one market, ``start <= open time < end``, as ``Candles``.

    ``timestamp`` is int64 ms (open time, UTC), the rest float64;
    ``source_timeframe`` says which stored timeframe they were read from: when
    ``timeframe`` is not stored it is resampled from the finest stored
    timeframe that tiles it. Missing candles are not filled; see
    ``gap_report``. Raises ``UnknownMarket``, ``UnknownTimeframe``,
    ``NoCandles`` (nothing stored at all) or ``ValidationFailed`` (start > end).
    An empty range returns empty ``Candles``. ``limit=N`` keeps the newest N.
    ``Candles.to_frame()`` gives a DataFrame with a UTC index.
    """
    timeframe_ms(timeframe)
    market = market_get(exchange=exchange, symbol=symbol)
    start_ms, end_ms = _to_ms(start, "start"), _to_ms(end, "end")
    _check_range(start_ms, end_ms)
    if limit is not None and limit < 1:
        raise ValidationFailed("limit must be at least 1.", fields={"limit": ["must be at least 1"]})
    source = resolve_source_timeframe(market=market, timeframe=timeframe)
    if source == timeframe:
        ts, ohlcv = store.read(
            market_id=market.id, timeframe=source, start_ms=start_ms, end_ms=end_ms, newest=limit
        )
    else:
        if limit is not None and start_ms is None:
            # Bound the read: the last ``limit`` buckets before end (or the newest candle).
            anchor = end_ms
            if anchor is None:
                last = store.last_open_time(market_id=market.id, timeframe=source) or 0
                anchor = last + timeframe_ms(source)
            start_ms = int(bucket_start(max(0, anchor - limit * timeframe_ms(timeframe)), timeframe))
        # Read whole buckets (start rounded down, end widened by one bucket) so
        # every returned candle is complete, then keep start <= open < end.
        read_start = None if start_ms is None else int(bucket_start(start_ms, timeframe))
        read_end = None if end_ms is None else end_ms + timeframe_ms(timeframe)
        ts, ohlcv = store.read(market_id=market.id, timeframe=source, start_ms=read_start, end_ms=read_end)
        ts, ohlcv = resample_arrays(ts, ohlcv, timeframe)
        keep = np.ones(len(ts), dtype=bool)
        if start_ms is not None:
            keep &= ts >= start_ms
        if end_ms is not None:
            keep &= ts < end_ms
        if not keep.all():
            ts, ohlcv = ts[keep], ohlcv[keep]
        if limit is not None and len(ts) > limit:
            ts, ohlcv = ts[-limit:], ohlcv[-limit:]
    # One contiguous array per column: cheap, and what the engine and the API index.
    return Candles.from_columns(ts, ohlcv, timeframe=timeframe, source_timeframe=source)


def candles_stored(
    *, market: Market, timeframe: str, start: datetime | None = None, end: datetime | None = None
) -> bool:
    """Whether any candle of ``market`` in ``[start, end)`` is stored for ``timeframe`` or the
    stored timeframe it is resampled from (``NoCandles`` when neither is stored at all)."""
    rows = Candle.objects.filter(
        market=market, timeframe=resolve_source_timeframe(market=market, timeframe=timeframe)
    )
    if start is not None:
        rows = rows.filter(open_time__gte=int(start.timestamp() * 1000))
    if end is not None:
        rows = rows.filter(open_time__lt=int(end.timestamp() * 1000))
    return rows.exists()
