"""Funding-rate history of perpetual markets: download (paged, resumable) through the keyless gateway.

ccxt's ``fetch_funding_rate_history`` pages like OHLCV: from ``since``, at most
``limit`` events (Binance: 1,000 per request, one event every 8 hours, so a
page covers about 333 days). Each page is committed on its own, so an
interrupted download keeps what it fetched and the next one resumes after the
last stored event. Reads are in ``selectors.funding``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction

from apps.core.errors import ValidationFailed
from apps.exchanges.gateway.ccxt_gateway import CcxtGateway
from apps.marketdata.gateway import download_gateway
from apps.marketdata.models import FundingRate, Market
from apps.marketdata.services import market_ensure
from apps.marketdata.timeframes import ms_to_datetime

FUNDING_PAGE_LIMIT = 1000  # Binance's maximum funding events per request
DEFAULT_FUNDING_HISTORY = timedelta(days=365)  # what a first download fetches when no start is given


@dataclass
class FundingDownloadReport:
    exchange: str
    symbol: str
    inserted: int
    pages: int
    first: datetime | None
    last: datetime | None

    def summary(self) -> str:
        span = f"{self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M}" if self.first else "nothing new"
        return f"{self.exchange} {self.symbol}: {self.inserted} funding rates inserted ({span}) in {self.pages} pages"


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def funding_rates_download(
    *,
    exchange: str,
    symbol: str,
    start: datetime | None = None,
    end: datetime | None = None,
    gateway: CcxtGateway | None = None,
    page_limit: int = FUNDING_PAGE_LIMIT,
) -> FundingDownloadReport:
    """Store a perpetual market's past funding rates, resuming after the last stored one.

    Fetches events in ``[start or last stored + 1 ms, end or now)``; a first
    download without ``start`` fetches the last year. Only swaps have funding
    (``ValidationFailed`` otherwise). Raises the gateway's errors
    (``ExchangeUnavailable``, ``RateLimited``, ``UnknownSymbol``).
    """
    market = market_ensure(exchange=exchange, symbol=symbol)
    if market.type != Market.Type.SWAP:
        raise ValidationFailed(
            f"{market.symbol} is not a perpetual swap: only perpetual markets pay funding.",
            fields={"symbol": ["not a perpetual market"]},
            code="not_perpetual",
        )
    now_ms = int(time.time() * 1000)
    start_ms, end_ms = _ms(start), _ms(end)
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ValidationFailed(
            "start must not be after end.", fields={"start": ["start must not be after end"]}
        )
    stop_ms = min(end_ms if end_ms is not None else now_ms, now_ms + 1)
    last = (
        FundingRate.objects.filter(market=market)
        .order_by("-funding_time")
        .values_list("funding_time", flat=True)
        .first()
    )
    if last is not None and (start_ms is None or last >= start_ms):
        since = last + 1
    elif start_ms is not None:
        since = start_ms
    else:
        since = now_ms - int(DEFAULT_FUNDING_HISTORY.total_seconds() * 1000)
    if gateway is None:
        gateway = download_gateway(exchange)
    inserted = pages = 0
    first_ms = last_ms = None
    while since < stop_ms:
        page = gateway.fetch_funding_rate_history(market.symbol, since, page_limit)
        pages += 1
        rows = {ts: (rate, mark) for ts, rate, mark in page if since <= ts < stop_ms}
        if rows:
            with transaction.atomic():
                before = FundingRate.objects.filter(market=market).count()
                FundingRate.objects.bulk_create(
                    [
                        FundingRate(market=market, funding_time=ts, rate=rate, mark_price=mark)
                        for ts, (rate, mark) in sorted(rows.items())
                    ],
                    ignore_conflicts=True,
                )
                inserted += FundingRate.objects.filter(market=market).count() - before
            first_ms = min(rows) if first_ms is None else first_ms
            last_ms = max(rows)
        if len(page) < page_limit or not page:
            break  # a short page is the last one
        newest = max(ts for ts, _, _ in page)
        if newest < since:  # the exchange returned nothing newer: stop rather than loop
            break
        since = newest + 1
    return FundingDownloadReport(
        exchange=exchange,
        symbol=market.symbol,
        inserted=inserted,
        pages=pages,
        first=ms_to_datetime(first_ms) if first_ms is not None else None,
        last=ms_to_datetime(last_ms) if last_ms is not None else None,
    )


def funding_rates_refresh_watched() -> dict[str, str]:
    """Download new funding rates of every watched perpetual market (the periodic task's work).

    One market's failure (offline, unknown symbol) is reported and the others
    still run.
    """
    from apps.core.errors import DomainError

    markets = (
        Market.objects.filter(type=Market.Type.SWAP, subscriptions__isnull=False, active=True)
        .select_related("exchange")
        .distinct()
    )
    result: dict[str, str] = {}
    for market in markets:
        key = f"{market.exchange.slug}:{market.symbol}"
        try:
            result[key] = funding_rates_download(
                exchange=market.exchange.slug, symbol=market.symbol
            ).summary()
        except DomainError as exc:
            result[key] = exc.message
    return result
