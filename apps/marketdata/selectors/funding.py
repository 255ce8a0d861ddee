"""Reads of the derivatives data a futures backtest needs: funding history and mark-price candles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Avg, Count, Max, Min

from apps.backtests.engine import Candles
from apps.marketdata import store
from apps.marketdata.models import FundingRate, Market
from apps.marketdata.timeframes import ms_to_datetime


def funding_rates(*, market: Market, start_ms: int | None = None, end_ms: int | None = None) -> list[list]:
    """Stored funding events ``start_ms <= time < end_ms`` as ``[[time ms, rate], ...]``, oldest first.

    The format the engine's ``BacktestConfig.funding_rates`` takes (rates as
    float: the engine computes in float64).
    """
    rows = FundingRate.objects.filter(market=market)
    if start_ms is not None:
        rows = rows.filter(funding_time__gte=start_ms)
    if end_ms is not None:
        rows = rows.filter(funding_time__lt=end_ms)
    return [
        [ts, float(rate)] for ts, rate in rows.order_by("funding_time").values_list("funding_time", "rate")
    ]


@dataclass
class FundingOverview:
    """What the market page shows about a perpetual market's stored funding history."""

    count: int
    first: datetime | None
    last: datetime | None
    mean_rate: float | None
    recent: list[FundingRate]


def funding_overview(*, market: Market, recent: int = 10) -> FundingOverview:
    """Count, span and mean of the stored funding rates, and the ``recent`` newest events."""
    stats = FundingRate.objects.filter(market=market).aggregate(
        count=Count("id"), first=Min("funding_time"), last=Max("funding_time"), mean=Avg("rate")
    )
    return FundingOverview(
        count=stats["count"],
        first=ms_to_datetime(stats["first"]) if stats["first"] is not None else None,
        last=ms_to_datetime(stats["last"]) if stats["last"] is not None else None,
        mean_rate=float(stats["mean"]) if stats["mean"] is not None else None,
        recent=list(FundingRate.objects.filter(market=market).order_by("-funding_time")[:recent]),
    )


def mark_candles(
    *, market: Market, timeframe: str, start_ms: int | None = None, end_ms: int | None = None
) -> Candles | None:
    """Stored mark-price candles ``start_ms <= open < end_ms`` as ``Candles``, or None when none are stored.

    Not resampled: a run uses mark candles of its own timeframe only (align them
    with ``Candles.with_mark``).
    """
    ts, ohlcv = store.read(
        market_id=market.id, timeframe=timeframe, start_ms=start_ms, end_ms=end_ms, table=store.MARK_TABLE
    )
    if not len(ts):
        return None
    return Candles.from_columns(ts, ohlcv, timeframe=timeframe)
