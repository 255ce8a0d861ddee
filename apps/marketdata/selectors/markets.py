"""Reads of the market catalog and of what the candle store holds."""

from __future__ import annotations

from django.db.models import Count, Max, Min, QuerySet

from apps.marketdata.errors import UnknownMarket
from apps.marketdata.models import Candle, Market
from apps.marketdata.timeframes import TIMEFRAMES, ms_to_datetime


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


def store_overview() -> list[dict]:
    """Per market and timeframe: first/last candle and count (one grouped query over the index)."""
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
            "first": ms_to_datetime(r["first"]).isoformat(),
            "last": ms_to_datetime(r["last"]).isoformat(),
            "count": r["count"],
        }
        for r in rows
    ]


def markets_with_candles() -> QuerySet[Market]:
    """Markets that have stored candles (an EXISTS probe on the candle index per market)."""
    from django.db.models import Exists, OuterRef

    return market_list().filter(Exists(Candle.objects.filter(market=OuterRef("pk"))))
