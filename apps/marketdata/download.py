"""Downloading candles and the market catalog through ccxt (public endpoints).

Downloads page through ``fetch_ohlcv`` from the last stored candle onwards
(resume), under ccxt's rate limiter, retrying network errors, 429 and 418 with
exponential backoff (honouring ``Retry-After``). Each page is committed on its
own, so an interrupted download keeps what it fetched and the next run resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt
import numpy as np
from django.db import transaction
from django.utils import timezone

from apps.core.errors import ValidationFailed
from apps.marketdata import ccxt_client, store
from apps.marketdata.errors import ExchangeRejected, ExchangeUnavailable
from apps.marketdata.models import Exchange, Market
from apps.marketdata.services import exchange_ensure, market_ensure
from apps.marketdata.timeframes import MONTH, timeframe_ms

logger = logging.getLogger(__name__)

PAGE_LIMIT = 1000  # Binance's maximum klines per request
DEFAULT_HISTORY_CANDLES = 1000  # what a first download fetches when no start is given
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

    def summary(self) -> str:
        resumed = f", resumed after {self.resumed_from:%Y-%m-%d %H:%M}" if self.resumed_from else ""
        span = f"{self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M}" if self.first else "nothing new"
        return (
            f"{self.exchange} {self.symbol} {self.timeframe}: {self.inserted} candles inserted ({span}) "
            f"in {self.pages} pages, {self.retries} retries{resumed}"
        )


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def with_retries(
    fn: Callable[[], Any],
    *,
    client: Any,
    exchange: str,
    max_retries: int,
    backoff: float,
    sleep: Callable[[float], None],
    on_retry: Callable[[Exception, float], None] | None = None,
) -> Any:
    """Call ``fn``; on network errors (incl. 429/418) wait and retry up to ``max_retries`` times."""
    attempt = 0
    while True:
        try:
            return fn()
        except ccxt.NetworkError as exc:
            if attempt >= max_retries:
                raise ExchangeUnavailable(
                    f"{ccxt_client.describe_network_error(exchange, exc)} Gave up after {attempt + 1} attempts."
                ) from exc
            wait = backoff * (2**attempt)
            if isinstance(exc, ccxt.DDoSProtection):
                # 418 means an IP ban for hammering on after 429s: wait longer.
                retry_after = (getattr(client, "last_response_headers", None) or {}).get("Retry-After")
                if retry_after:
                    wait = max(wait, float(retry_after))
                elif " 418 " in str(exc):
                    wait *= 4
            wait = min(wait, 120.0)
            attempt += 1
            logger.warning("%s: %s; retry %d in %.1fs", exchange, type(exc).__name__, attempt, wait)
            if on_retry:
                on_retry(exc, wait)
            sleep(wait)
        except ccxt.BadSymbol as exc:
            raise ExchangeRejected(f"{exchange} does not list this market: {exc}", code="bad_symbol") from exc
        except ccxt.BaseError as exc:
            raise ExchangeRejected(f"{exchange} refused the request: {exc}") from exc


def candles_download(
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
    client: Any = None,
    progress: Progress | None = None,
    max_retries: int = 5,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    page_limit: int = PAGE_LIMIT,
) -> DownloadReport:
    """Download candles into the store with ``fetch_ohlcv``, resuming after the last stored one.

    Fetches ``[start or last stored + 1, end or now)``; only closed candles are
    stored. Raises ``ExchangeUnavailable`` (offline, or still failing after
    ``max_retries`` backoff retries) or ``ExchangeRejected`` (unknown symbol).
    ``client`` lets a caller pass a preconfigured ccxt client.
    """
    step = timeframe_ms(timeframe)
    if timeframe == MONTH:
        raise ValidationFailed(
            "Download 1d or finer and let the store resample months.", fields={"timeframe": ["1M"]}
        )
    market = market_ensure(exchange=exchange, symbol=symbol)
    start_ms, end_ms = _ms(start), _ms(end)
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ValidationFailed(
            "start must not be after end.", fields={"start": ["start must not be after end"]}
        )
    if client is None:
        client = ccxt_client.client_for(exchange)
    elif not getattr(client, "markets", None):
        with_retries(
            client.load_markets,
            client=client,
            exchange=exchange,
            max_retries=max_retries,
            backoff=backoff,
            sleep=sleep,
        )
    now_ms = int(time.time() * 1000)
    # Only closed candles: the one still open would be stored with a wrong close.
    stop_ms = min(end_ms if end_ms is not None else now_ms, now_ms - step + 1)
    last = store.last_open_time(market_id=market.id, timeframe=timeframe)
    resumed_from = None
    if last is not None and (start_ms is None or last >= start_ms):
        since = last + step
        resumed_from = _dt(last)
    elif start_ms is not None:
        since = start_ms - start_ms % step  # align to a candle boundary
    else:
        since = stop_ms - DEFAULT_HISTORY_CANDLES * step
        since -= since % step
    total_expected = max(0, (stop_ms - since) // step)
    inserted = pages = 0
    retries = [0]
    first_ms = last_ms = None

    def count_retry(exc: Exception, wait: float) -> None:
        retries[0] += 1

    while since < stop_ms:
        rows = with_retries(
            lambda since=since: client.fetch_ohlcv(market.symbol, timeframe, since, page_limit),
            client=client,
            exchange=exchange,
            max_retries=max_retries,
            backoff=backoff,
            sleep=sleep,
            on_retry=count_retry,
        )
        pages += 1
        if not rows:
            break
        data = np.asarray([r[:6] for r in rows], dtype=np.float64)
        ts = data[:, 0].astype(np.int64)
        keep = (ts >= since) & (ts < stop_ms)
        ts, ohlcv = ts[keep], np.ascontiguousarray(data[keep, 1:6])
        if len(ts):
            order = np.unique(ts, return_index=True)[1]
            ts, ohlcv = ts[order], ohlcv[order]
            with transaction.atomic():
                inserted += store.upsert(market_id=market.id, timeframe=timeframe, ts=ts, ohlcv=ohlcv)
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
        retries=retries[0],
        resumed_from=resumed_from,
        first=_dt(first_ms) if first_ms is not None else None,
        last=_dt(last_ms) if last_ms is not None else None,
    )


# ----------------------------------------------------------------- catalog
def _step(value: Any, precision_mode: int) -> Decimal | None:
    """ccxt precision -> a step: TICK_SIZE mode gives the step, DECIMAL_PLACES a digit count."""
    if value is None:
        return None
    if precision_mode == ccxt.DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(value))
    return Decimal(str(value))


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def markets_refresh(*, exchange: str, client: Any = None) -> int:
    """Load ``exchange``'s markets through ccxt ``load_markets()`` and upsert the catalog; returns the count.

    Markets the exchange no longer lists are marked inactive, never deleted
    (candles and bots reference them).
    """
    if client is None:
        client = ccxt_client.client_for(exchange)
        markets = client.markets
    else:
        markets = ccxt_client.call(client.load_markets, True, exchange=exchange)
    ex: Exchange = exchange_ensure(exchange=exchange)
    mode = getattr(client, "precisionMode", ccxt.TICK_SIZE)
    seen = []
    with transaction.atomic():
        existing = {m.symbol: m for m in Market.objects.filter(exchange=ex)}
        for symbol, info in markets.items():
            kind = "swap" if info.get("swap") else "future" if info.get("future") else "spot"
            if kind == "spot" and not info.get("spot", True):
                continue  # options and other products are out of scope
            limits = info.get("limits") or {}
            values = {
                "exchange_symbol": info.get("id") or "",
                "base": info.get("base") or "",
                "quote": info.get("quote") or "",
                "type": kind,
                "precision_amount": _step((info.get("precision") or {}).get("amount"), mode),
                "precision_price": _step((info.get("precision") or {}).get("price"), mode),
                "min_amount": _dec((limits.get("amount") or {}).get("min")),
                "min_notional": _dec((limits.get("cost") or {}).get("min")),
                "maker_fee": _dec(info.get("maker")) or Decimal(0),
                "taker_fee": _dec(info.get("taker")) or Decimal(0),
                "active": info.get("active") is not False,
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
