"""Reads: the one door to market data for every app.

``candles()`` is what backtests, bots, risk and portfolio call: it returns the
engine's ``Candles`` (the platform's one in-memory candle container) and never
builds per-row ORM objects (see ``store.read``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise

import numpy as np
import pandas as pd
from django.db.models import Max, Min, QuerySet

from apps.backtests.engine.candles import Candles
from apps.core.errors import ValidationFailed
from apps.marketdata import store
from apps.marketdata.errors import NoCandles, UnknownMarket
from apps.marketdata.models import Candle, ImportJob, Market, Subscription
from apps.marketdata.timeframes import MONTH, TIMEFRAMES, bucket_start, can_resample, timeframe_ms


# ----------------------------------------------------------------- markets
def market_get(*, exchange: str, symbol: str) -> Market:
    """The stored market ``symbol`` on ``exchange`` (``BTC/USDT`` or ``BTCUSDT``), or ``UnknownMarket``."""
    market = Market.objects.select_related("exchange").filter(exchange__slug=exchange, symbol=symbol).first()
    if market is None and "/" not in symbol:
        market = (
            Market.objects.select_related("exchange")
            .filter(exchange__slug=exchange, exchange_symbol=symbol)
            .first()
        )
    if market is None:
        raise UnknownMarket(
            f"Unknown market {symbol!r} on {exchange!r}.",
            fields={"symbol": [f"unknown market {symbol!r} on {exchange!r}"]},
        )
    return market


def market_list(
    *,
    exchange: str | None = None,
    quote: str | None = None,
    type: str | None = None,
    search: str | None = None,
) -> QuerySet[Market]:
    qs = Market.objects.select_related("exchange")
    if exchange:
        qs = qs.filter(exchange__slug=exchange)
    if quote:
        qs = qs.filter(quote__iexact=quote)
    if type:
        qs = qs.filter(type=type)
    if search:
        qs = qs.filter(symbol__icontains=search)
    return qs


def stored_timeframes(*, market: Market) -> list[str]:
    """Timeframes with at least one stored candle, finest first (one index probe each)."""
    return [tf for tf in TIMEFRAMES if Candle.objects.filter(market=market, timeframe=tf).exists()]


# ----------------------------------------------------------------- candles
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


def resample_arrays(ts: np.ndarray, ohlcv: np.ndarray, timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate sorted candles into ``timeframe`` buckets (first/max/min/last/sum).

    Buckets with no source candle are absent, not filled: a hole stays a hole
    and shows up in the gap report.
    """
    if len(ts) == 0:
        return ts, ohlcv
    buckets = bucket_start(ts, timeframe)
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    ends = np.r_[starts[1:], len(ts)] - 1
    out = np.empty((len(starts), 5), dtype=np.float64)
    out[:, 0] = ohlcv[starts, 0]
    out[:, 1] = np.maximum.reduceat(ohlcv[:, 1], starts)
    out[:, 2] = np.minimum.reduceat(ohlcv[:, 2], starts)
    out[:, 3] = ohlcv[ends, 3]
    out[:, 4] = np.add.reduceat(ohlcv[:, 4], starts)
    return buckets[starts].astype(np.int64), out


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


# -------------------------------------------------------------- gap report
@dataclass(frozen=True)
class Gap:
    after: datetime  # the last candle before the hole
    start: datetime  # the first missing open time
    end: datetime  # the last missing open time
    missing: int


@dataclass(frozen=True)
class GapReport:
    exchange: str
    symbol: str
    timeframe: str
    first: datetime | None
    last: datetime | None
    present: int
    expected: int
    missing: int
    gaps: list[Gap] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "present": self.present,
            "expected": self.expected,
            "missing": self.missing,
            "gaps": [
                {
                    "after": g.after.isoformat(),
                    "start": g.start.isoformat(),
                    "end": g.end.isoformat(),
                    "missing": g.missing,
                }
                for g in self.gaps
            ],
        }


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def _months_between(a_ms: int, b_ms: int) -> int:
    a = np.datetime64(int(a_ms), "ms").astype("datetime64[M]")
    b = np.datetime64(int(b_ms), "ms").astype("datetime64[M]")
    return int((b - a).astype(int))


def gap_report(
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> GapReport:
    """Missing candles between the first and last candle in range (resampled timeframes included).

    Holes at the edges of ``start``/``end`` are not counted: the report covers
    what is stored, from its first to its last candle.
    """
    ts = candles(exchange=exchange, symbol=symbol, timeframe=timeframe, start=start, end=end).timestamp
    if len(ts) == 0:
        return GapReport(exchange, symbol, timeframe, None, None, 0, 0, 0, [])
    gaps: list[Gap] = []
    if timeframe == MONTH:
        steps = np.array([_months_between(a, b) for a, b in pairwise(ts)], dtype=np.int64)
        expected = _months_between(ts[0], ts[-1]) + 1
        for i in np.flatnonzero(steps > 1):
            months = np.datetime64(int(ts[i]), "ms").astype("datetime64[M]")
            first_missing = (months + 1).astype("datetime64[ms]").astype(np.int64)
            last_missing = (months + int(steps[i]) - 1).astype("datetime64[ms]").astype(np.int64)
            gaps.append(Gap(_dt(ts[i]), _dt(first_missing), _dt(last_missing), int(steps[i]) - 1))
    else:
        step = timeframe_ms(timeframe)
        diffs = np.diff(ts) // step
        expected = int((ts[-1] - ts[0]) // step) + 1
        for i in np.flatnonzero(diffs > 1):
            missing = int(diffs[i]) - 1
            gaps.append(Gap(_dt(ts[i]), _dt(ts[i] + step), _dt(ts[i + 1] - step), missing))
    missing_total = sum(g.missing for g in gaps)
    return GapReport(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        first=_dt(ts[0]),
        last=_dt(ts[-1]),
        present=len(ts),
        expected=expected,
        missing=missing_total,
        gaps=gaps,
    )


# ---------------------------------------------------------------- prices
def last_stored_close(*, market: Market) -> tuple[int, float] | None:
    """(open time ms, close) of the newest stored candle of the market's finest timeframe."""
    for tf in TIMEFRAMES:
        row = (
            Candle.objects.filter(market=market, timeframe=tf)
            .order_by("-open_time")
            .values_list("open_time", "close")
            .first()
        )
        if row is not None:
            return int(row[0]), float(row[1])
    return None


def latest_price(*, exchange: str, symbol: str) -> Decimal:
    """The market's last price as Decimal: the live ticker when online, else the replay feed.

    Offline (no exchange reachable, or live prices disabled) the replay feed
    plays stored candles forward; with no replay running, the last stored close.
    """
    from apps.marketdata import live

    return live.price_quote(exchange=exchange, symbol=symbol).price


def subscription_list(*, user) -> QuerySet[Subscription]:
    return Subscription.objects.filter(user=user).select_related("market", "market__exchange")


def subscription_get(*, user, pk: int) -> Subscription:
    from apps.core.errors import NotFound

    try:
        return subscription_list(user=user).get(pk=pk)
    except Subscription.DoesNotExist:
        raise NotFound("Subscription not found.") from None


def import_job_list(*, user) -> QuerySet[ImportJob]:
    """The user's import/download jobs, newest first."""
    return ImportJob.objects.filter(user=user)


def import_job_get(*, user, pk: int | str) -> ImportJob:
    """One of the user's jobs; another user's (or a missing one) is ``NotFound``."""
    from apps.core.errors import NotFound

    try:
        number = int(pk)
        if not 0 < number < 2**63:  # beyond the id column: nothing to look up
            raise ImportJob.DoesNotExist
        return import_job_list(user=user).get(pk=number)
    except (ImportJob.DoesNotExist, ValueError):
        raise NotFound("Job not found.") from None


def store_overview() -> list[dict]:
    """Per market and timeframe: first/last candle and count (one grouped query over the index)."""
    from django.db.models import Count

    rows = (
        Candle.objects.values("market_id", "market__exchange__slug", "market__symbol", "timeframe")
        .annotate(first=Min("open_time"), last=Max("open_time"), count=Count("id"))
        .order_by("market__exchange__slug", "market__symbol", "timeframe")
    )
    return [
        {
            "market_id": r["market_id"],
            "exchange": r["market__exchange__slug"],
            "symbol": r["market__symbol"],
            "timeframe": r["timeframe"],
            "first": _dt(r["first"]).isoformat(),
            "last": _dt(r["last"]).isoformat(),
            "count": r["count"],
        }
        for r in rows
    ]
