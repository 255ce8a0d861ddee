"""Dashboard pages: the watchlist (Markets) and the chart. Data comes from the API; prices live over Channels."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.exchanges.catalog import exchange_choices
from apps.marketdata import selectors
from apps.marketdata.errors import UnknownMarket
from apps.marketdata.timeframes import TIMEFRAMES

CHART_TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d", "1w"]


@login_required
def index(request):
    markets = selectors.market_list(exchange=None).filter(active=True).values_list("exchange__slug", "symbol")
    return render(
        request,
        "marketdata/index.html",
        {
            "section": "Markets",
            "timeframes": TIMEFRAMES,
            "catalog": list(markets),
            "exchanges": exchange_choices(),
        },
    )


@login_required
def chart(request):
    exchange = request.GET.get("exchange") or "binance"
    symbol = request.GET.get("symbol") or "BTC/USDT"
    timeframe = request.GET.get("timeframe") or "1h"
    error = None
    funding = None
    try:
        market = selectors.market_get(exchange=exchange, symbol=symbol)
        symbol = market.symbol
        if market.type == market.Type.SWAP:
            funding = selectors.funding_overview(market=market)
    except UnknownMarket as exc:
        error = exc.message
    if timeframe not in TIMEFRAMES:
        timeframe = "1h"
    return render(
        request,
        "marketdata/chart.html",
        {
            "section": "Markets",
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "timeframes": CHART_TIMEFRAMES,
            "error": error,
            "funding": funding,
        },
        status=404 if error else 200,
    )
