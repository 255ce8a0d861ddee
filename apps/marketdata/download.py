"""Downloading candles and the market catalog through the keyless exchange gateway.

Downloads page through ``fetch_ohlcv`` from the last stored candle onwards
(resume). The gateway (``marketdata.gateway.download_gateway``) keeps ccxt's
rate limiter on and retries network errors, 429 and 418 with exponential
backoff (honouring ``Retry-After``). Each page is committed on its own, so an
interrupted download keeps what it fetched and the next run resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from django.db import transaction
from django.utils import timezone

from apps.core.errors import ValidationFailed
from apps.exchanges.gateway.ccxt_gateway import CcxtGateway
from apps.marketdata import store
from apps.marketdata.gateway import download_gateway, public_gateway
from apps.marketdata.models import Exchange, Market
from apps.marketdata.services import exchange_ensure, market_ensure
from apps.marketdata.timeframes import MONTH, ms_to_datetime, timeframe_ms

PAGE_LIMIT = 1000  # Binance's maximum klines per request
DEFAULT_HISTORY_CANDLES = 1000  # what a first download fetches when no start is given
PRICES = ("last", "mark")  # last-trade candles, or a derivatives market's mark-price candles
Progress = Callable[[int, int], None]


@dataclass
class DownloadReport:
    exchange: str
    symbol: str
    timeframe: str
    inserted: int
    pages: int
    retries: int
    resumed_from: datetime | None
    first: datetime | None
    last: datetime | None
    price: str = "last"

    def summary(self) -> str:
        resumed = f", resumed after {self.resumed_from:%Y-%m-%d %H:%M}" if self.resumed_from else ""
        span = f"{self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M}" if self.first else "nothing new"
        return (
            f"{self.exchange} {self.symbol} {self.timeframe}: {self.inserted} "
            f"{'mark-price candles' if self.price == 'mark' else 'candles'} inserted ({span}) "
            f"in {self.pages} pages, {self.retries} retries{resumed}"
        )


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def candles_download(
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
    gateway: CcxtGateway | None = None,
    progress: Progress | None = None,
    page_limit: int = PAGE_LIMIT,
    price: str = "last",
) -> DownloadReport:
    """Download candles into the store with ``fetch_ohlcv``, resuming after the last stored one.

    Fetches ``[start or last stored + 1, end or now)``; only closed candles are
    stored. ``price="mark"`` downloads a derivatives market's mark-price
    candles (ccxt ``params={"price": "mark"}``) into the mark-candle table
    instead. Raises the gateway's errors: ``ExchangeUnavailable`` (offline, or
    still failing after the gateway's retries), ``RateLimited`` or
    ``UnknownSymbol``. ``gateway`` lets a caller pass its own (a test's, with
    its own retries and sleep); the default is the shared download gateway.
    """
    step = timeframe_ms(timeframe)
    if timeframe == MONTH:
        raise ValidationFailed(
            "Download 1d or finer and let the store resample months.", fields={"timeframe": ["1M"]}
        )
    if price not in PRICES:
        raise ValidationFailed(f"price must be one of {', '.join(PRICES)}.", fields={"price": [price]})
    market = market_ensure(exchange=exchange, symbol=symbol)
    table = store.TABLE
    if price == "mark":
        if market.type == Market.Type.SPOT:
            raise ValidationFailed(
                f"{market.symbol} is a spot market: mark prices exist for futures and perpetual swaps only.",
                fields={"price": ["mark prices exist for futures and swaps only"]},
            )
        table = store.MARK_TABLE
    start_ms, end_ms = _ms(start), _ms(end)
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ValidationFailed(
            "start must not be after end.", fields={"start": ["start must not be after end"]}
        )
    if gateway is None:
        gateway = download_gateway(exchange)
    retried_before = gateway.retried
    now_ms = int(time.time() * 1000)
    # Only closed candles: the one still open would be stored with a wrong close.
    stop_ms = min(end_ms if end_ms is not None else now_ms, now_ms - step + 1)
    last = store.last_open_time(market_id=market.id, timeframe=timeframe, table=table)
    resumed_from = None
    if last is not None and (start_ms is None or last >= start_ms):
        since = last + step
        resumed_from = ms_to_datetime(last)
    elif start_ms is not None:
        since = start_ms - start_ms % step  # align to a candle boundary
    else:
        since = stop_ms - DEFAULT_HISTORY_CANDLES * step
        since -= since % step
    total_expected = max(0, (stop_ms - since) // step)
    inserted = pages = 0
    first_ms = last_ms = None
    while since < stop_ms:
        data = gateway.fetch_ohlcv_array(
            market.symbol, timeframe, since, page_limit, price=None if price == "last" else price
        )
        pages += 1
        if not len(data):
            break
        ts = data[:, 0].astype(np.int64)
        keep = (ts >= since) & (ts < stop_ms)
        ts, ohlcv = ts[keep], np.ascontiguousarray(data[keep, 1:6])
        if len(ts):
            order = np.unique(ts, return_index=True)[1]
            ts, ohlcv = ts[order], ohlcv[order]
            with transaction.atomic():
                inserted += store.upsert(
                    market_id=market.id, timeframe=timeframe, ts=ts, ohlcv=ohlcv, table=table
                )
            first_ms = int(ts[0]) if first_ms is None else first_ms
            last_ms = int(ts[-1])
        newest = int(data[-1, 0])
        if newest + step <= since:  # the exchange returned nothing newer: stop rather than loop
            break
        since = newest + step
        if progress:
            progress(min(total_expected, max(0, total_expected - (stop_ms - since) // step)), total_expected)
    return DownloadReport(
        exchange=exchange,
        symbol=market.symbol,
        timeframe=timeframe,
        inserted=inserted,
        pages=pages,
        retries=gateway.retried - retried_before,
        resumed_from=resumed_from,
        first=ms_to_datetime(first_ms) if first_ms is not None else None,
        last=ms_to_datetime(last_ms) if last_ms is not None else None,
        price=price,
    )


# ----------------------------------------------------------------- catalog
MARKET_TYPES = ("spot", "swap", "future")  # options and other products are out of scope


def markets_refresh(*, exchange: str, gateway: CcxtGateway | None = None) -> int:
    """Load ``exchange``'s markets (ccxt ``load_markets()``) and upsert the catalog; returns the count.

    Markets the exchange no longer lists are marked inactive, never deleted
    (candles and bots reference them).
    """
    if gateway is None:
        gateway = public_gateway(exchange)
    markets = gateway.load_markets(reload=True)
    ex: Exchange = exchange_ensure(exchange=exchange)
    seen = []
    with transaction.atomic():
        existing = {m.symbol: m for m in Market.objects.filter(exchange=ex)}
        for symbol, info in markets.items():
            if info.type not in MARKET_TYPES:
                continue
            values = {
                "exchange_symbol": info.exchange_symbol,
                "base": info.base,
                "quote": info.quote,
                "type": info.type,
                "precision_amount": info.amount_step,
                "precision_price": info.price_step,
                "min_amount": info.min_amount,
                "min_notional": info.min_cost,
                "maker_fee": info.maker_fee or Decimal(0),
                "taker_fee": info.taker_fee or Decimal(0),
                "active": info.active,
            }
            market = existing.get(symbol)
            if market is None:
                Market.objects.create(exchange=ex, symbol=symbol, **values)
            else:
                for key, value in values.items():
                    setattr(market, key, value)
                market.save()
            seen.append(symbol)
        Market.objects.filter(exchange=ex).exclude(symbol__in=seen).update(active=False)
        ex.markets_loaded_at = timezone.now()
        ex.save(update_fields=["markets_loaded_at"])
    return len(seen)
