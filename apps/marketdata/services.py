"""Writes: catalog upkeep, candle import and subscriptions.

Downloads through the exchange gateway live in ``download.py``, import/download
jobs in ``jobs.py``, live prices in ``live.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from apps.core.errors import Conflict
from apps.exchanges.catalog import exchange_name
from apps.marketdata import offline_markets, store
from apps.marketdata.errors import UnknownMarket
from apps.marketdata.importers.files import read_candle_file
from apps.marketdata.models import Exchange, Market, Subscription
from apps.marketdata.selectors import market_get
from apps.marketdata.timeframes import ms_to_datetime, validate_timeframe

Progress = Callable[[int, int], None]


# ----------------------------------------------------------------- catalog
def exchange_ensure(*, exchange: str) -> Exchange:
    """The ``Exchange`` row for a ccxt id, created on first use."""
    obj, _ = Exchange.objects.get_or_create(slug=exchange, defaults={"name": exchange_name(exchange)})
    return obj


def market_ensure(*, exchange: str, symbol: str, **attrs: Any) -> Market:
    """The ``Market`` row, created from the offline catalog (or ``attrs``) if missing.

    ``symbol`` may be unified (``BTC/USDT``) or the exchange's id (``BTCUSDT``).
    Raises ``UnknownMarket`` when neither the store, the catalog nor ``attrs``
    know the market.
    """
    try:
        return market_get(exchange=exchange, symbol=symbol)
    except UnknownMarket:
        pass
    spec = offline_markets.offline_market(exchange, symbol)
    if spec is None:
        if not attrs.get("base") or not attrs.get("quote"):
            raise UnknownMarket(
                f"Unknown market {symbol!r} on {exchange!r}: not in the offline catalog; "
                "run `manage.py refresh_markets` while online.",
                fields={"symbol": [f"unknown market {symbol!r}"]},
            )
        spec = {"symbol": symbol, "exchange_symbol": symbol.replace("/", "").split(":")[0]}
    spec = {**spec, **attrs}
    unified = spec.pop("symbol")
    ex = exchange_ensure(exchange=exchange)
    try:
        with transaction.atomic():
            market, _ = Market.objects.get_or_create(exchange=ex, symbol=unified, defaults=spec)
    except IntegrityError:  # created concurrently
        market = Market.objects.get(exchange=ex, symbol=unified)
    market.exchange = ex
    return market


# ----------------------------------------------------------------- import
@dataclass
class ImportReport:
    file: str
    exchange: str
    symbol: str
    timeframe: str
    rows: int
    inserted: int
    skipped: int
    first: datetime | None
    last: datetime | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["first"] = self.first.isoformat() if self.first else None
        data["last"] = self.last.isoformat() if self.last else None
        return data

    def summary(self) -> str:
        span = f"{self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M}" if self.first else "no rows"
        return (
            f"{self.file}: {self.rows} rows ({span}), {self.inserted} inserted, "
            f"{self.skipped} already stored, {self.seconds:.2f} s"
        )


def candles_import_arrays(
    *, exchange: str, symbol: str, timeframe: str, ts, ohlcv, progress: Progress | None = None
) -> int:
    """Bulk-insert already validated candles (sorted unique int64 ms, float64 (n, 5)); returns inserted.

    The market row (if new) and the candles are written in one transaction.
    """
    validate_timeframe(timeframe)
    with transaction.atomic():
        market = market_ensure(exchange=exchange, symbol=symbol)
        return store.upsert(market_id=market.id, timeframe=timeframe, ts=ts, ohlcv=ohlcv, progress=progress)


def candles_import_file(
    *,
    path: str | Path,
    exchange: str = "binance",
    symbol: str,
    timeframe: str,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a candle file (Binance dump CSV/zip or plain OHLCV CSV, ``.gz`` ok).

    Idempotent: candles already stored are skipped (``ON CONFLICT DO NOTHING``),
    so re-importing changes nothing. The whole file is validated before the
    first write, and the market row (if new) and the candles are written in one
    transaction: a bad file raises ``ImportFailed`` naming the file and line,
    and nothing is stored. ``progress(done, total)`` is called as rows are
    written; an exception raised by it rolls the whole import back.
    """
    started = time.perf_counter()
    validate_timeframe(timeframe)
    parsed = read_candle_file(path, timeframe=timeframe)
    with transaction.atomic():
        market = market_ensure(exchange=exchange, symbol=symbol)
        inserted = store.upsert(
            market_id=market.id, timeframe=timeframe, ts=parsed.ts, ohlcv=parsed.ohlcv, progress=progress
        )
    n = len(parsed.ts)
    return ImportReport(
        file=parsed.source,
        exchange=exchange,
        symbol=market.symbol,
        timeframe=timeframe,
        rows=parsed.rows,
        inserted=inserted,
        skipped=parsed.rows - inserted,
        first=ms_to_datetime(parsed.ts[0]) if n else None,
        last=ms_to_datetime(parsed.ts[-1]) if n else None,
        seconds=time.perf_counter() - started,
    )


# ------------------------------------------------------------ subscriptions
def subscription_create(
    *, user, exchange: str, symbol: str, timeframe: str = "1h", note: str = ""
) -> Subscription:
    """Watch a market (created from the catalog if needed); a duplicate is a ``Conflict``."""
    validate_timeframe(timeframe)
    market = market_ensure(exchange=exchange, symbol=symbol)
    try:
        with transaction.atomic():
            return Subscription.objects.create(user=user, market=market, timeframe=timeframe, note=note)
    except IntegrityError:
        raise Conflict(
            f"You already watch {market.symbol} on {exchange}.",
            fields={"symbol": ["already on your watchlist"]},
        ) from None


def subscription_update(
    *, subscription: Subscription, timeframe: str | None = None, note: str | None = None
) -> Subscription:
    if timeframe is not None:
        subscription.timeframe = validate_timeframe(timeframe)
    if note is not None:
        subscription.note = note
    subscription.save(update_fields=["timeframe", "note"])
    return subscription


def subscription_delete(*, subscription: Subscription) -> None:
    subscription.delete()
