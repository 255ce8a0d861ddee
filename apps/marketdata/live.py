"""Live prices: the exchange's public ticker/order book/trades, cached briefly, and the offline replay feed.

Live data comes through the keyless exchange gateway (``marketdata.gateway``).

When the exchange cannot be reached (``MARKETDATA_ONLINE=false``, no network,
rate limited) prices come from the **replay feed**: stored candles played
forward, one stored candle per ``step / MARKETDATA_REPLAY_SPEED`` of wall time,
with the price moving from the candle's open to its close. The feed is a pure
function of the wall clock and the stored candles, so every process (web,
worker, beat) sees the same replay price without shared state. Replay walks
candles by position, not by time, so multi-month holes between stored
segments do not freeze it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max, Min, Sum

from apps.core.errors import DomainError
from apps.core.events import publish_event
from apps.exchanges.catalog import SUPPORTED_EXCHANGES
from apps.exchanges.gateway.base import Ticker
from apps.exchanges.gateway.ccxt_gateway import CcxtGateway
from apps.exchanges.gateway.errors import ExchangeUnavailable, RateLimited
from apps.marketdata import gateway as exchange_gateway
from apps.marketdata import store
from apps.marketdata.errors import NoCandles
from apps.marketdata.models import Candle, Market, Subscription
from apps.marketdata.selectors import market_get, subscription_list
from apps.marketdata.timeframes import TIMEFRAMES, bucket_start, timeframe_ms

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
OFFLINE_SECONDS = 30  # after a failed call, skip the exchange for this long (no timeout per request)


@dataclass(frozen=True)
class PriceQuote:
    exchange: str
    symbol: str
    price: Decimal
    timestamp: int  # ms: exchange time (live) or the replayed candle time (replay)
    source: str  # "live" | "replay"


def _quantize(value: float | Decimal | None, market: Market) -> str | None:
    """A price as a decimal string at the market's tick (what the exchange would show)."""
    if value is None:
        return None
    number = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    step = market.precision_price
    if step and step > 0:
        number = (number / step).to_integral_value(ROUND_HALF_EVEN) * step
    return format(number.normalize(), "f")


def _offline_key(exchange: str) -> str:
    return f"marketdata:offline:{exchange}"


def _live_gateway(exchange: str) -> CcxtGateway | None:
    """The keyless gateway, or None when live access is off or recently failed."""
    if not exchange_gateway.online() or cache.get(_offline_key(exchange)):
        return None
    if exchange not in SUPPORTED_EXCHANGES:  # e.g. candles imported under a made-up name: replay only
        return None
    return exchange_gateway.public_gateway(exchange)


def _live_call(exchange: str, method: str, *args: Any) -> Any | None:
    gateway = _live_gateway(exchange)
    if gateway is None:
        return None
    try:
        return getattr(gateway, method)(*args)
    except (ExchangeUnavailable, RateLimited):
        logger.warning("%s unreachable; using the replay feed for %ds", exchange, OFFLINE_SECONDS)
        cache.set(_offline_key(exchange), True, OFFLINE_SECONDS)
        return None


# ------------------------------------------------------------------ replay
def _replay_source(market: Market) -> tuple[str, int]:
    """(finest stored timeframe, candle count), cached for a minute."""
    key = f"marketdata:replay:{market.id}"
    found = cache.get(key)
    if found is None:
        for tf in TIMEFRAMES:
            count = Candle.objects.filter(market=market, timeframe=tf).count()
            if count:
                found = (tf, count)
                break
        if found is None:
            raise NoCandles(
                f"No live prices for {market.exchange.slug} {market.symbol}: the exchange is not reachable "
                "and no candles are stored to replay. Import or download candles first.",
            )
        cache.set(key, found, 60)
    return found


def replay_state(market: Market, *, now_ms: int | None = None) -> dict[str, Any]:
    """The replay feed for ``market`` at wall time ``now_ms``: current candle, price, 24h window."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    speed = float(settings.MARKETDATA_REPLAY_SPEED)
    for _attempt in range(2):
        tf, count = _replay_source(market)
        step = timeframe_ms(tf)
        replay_units = now_ms * speed / step
        index = int(replay_units) % count
        fraction = replay_units - int(replay_units)
        candle = _replay_candle(market, tf, count, index, seconds_left=(1 - fraction) * step / speed / 1000)
        if candle is not None:
            break
        cache.delete(f"marketdata:replay:{market.id}")  # candles were deleted since they were counted
    else:
        raise NoCandles(f"The stored candles of {market.exchange.slug} {market.symbol} changed; try again.")
    open_time, o, h, lo, c, v, day_open, day_high, day_low, day_volume = candle
    price = o + (c - o) * fraction
    replay_ms = open_time + int(step * fraction)
    return {
        "timeframe": tf,
        "open_time": open_time,
        "replay_time": replay_ms,
        "candle": [open_time, o, max(h, price), min(lo, price), price, v * fraction],
        "price": price,
        "day_open": day_open,
        "day_high": day_high,
        "day_low": day_low,
        "day_volume": day_volume,
    }


# How long the replay feed keeps a candle and its 24h window at most: as long as the count of
# stored candles it was found by (``_replay_source``), so an import is seen as soon as that is.
_REPLAY_CANDLE_SECONDS = 60


def _replay_candle(market: Market, tf: str, count: int, index: int, *, seconds_left: float) -> tuple | None:
    """The replayed candle at ``index`` with its 24h window, kept while the feed is on it; None: no such row.

    The feed stays on one candle for ``step / MARKETDATA_REPLAY_SPEED`` of wall time (a minute for
    1m candles at speed 1) while every ticker and paper order asks for the price: the candle and the
    window's high, low, volume and opening price are read once per candle (three queries, the first an
    OFFSET scan), not once per second. The price moves within the candle (``replay_state``).
    """
    key = f"marketdata:replay:candle:{market.id}:{tf}:{count}:{index}"
    kept = cache.get(key)
    if kept is not None:
        return kept
    row = list(
        Candle.objects.filter(market=market, timeframe=tf)
        .order_by("open_time")
        .values_list("open_time", "open", "high", "low", "close", "volume")[index : index + 1]
    )
    if not row:
        return None
    open_time, o, h, lo, c, v = row[0]
    window = Candle.objects.filter(
        market=market, timeframe=tf, open_time__gt=open_time - DAY_MS, open_time__lte=open_time
    ).aggregate(high=Max("high"), low=Min("low"), volume=Sum("volume"), first=Min("open_time"))
    day_open = (
        Candle.objects.filter(market=market, timeframe=tf, open_time=window["first"])
        .values_list("open", flat=True)
        .first()
    )
    candle = (open_time, o, h, lo, c, v, day_open, window["high"], window["low"], window["volume"])
    seconds = int(min(_REPLAY_CANDLE_SECONDS, seconds_left))
    if seconds >= 1:
        cache.set(key, candle, seconds)
    return candle


def _replay_closed_open_time(market: Market, now_ms: int) -> tuple[str, int]:
    """(replay timeframe, open time of the newest stored candle the replay feed has closed)."""
    for _attempt in range(2):
        tf, count = _replay_source(market)
        step = timeframe_ms(tf)
        closed_index = (int(now_ms * float(settings.MARKETDATA_REPLAY_SPEED) / step) - 1) % count
        key = f"marketdata:replay:closed:{market.id}:{tf}:{count}:{closed_index}"
        open_time = cache.get(key)
        if open_time is None:
            row = (
                Candle.objects.filter(market=market, timeframe=tf)
                .order_by("open_time")
                .values_list("open_time", flat=True)[closed_index : closed_index + 1]
            )
            open_time = row[0] if row else None
        if open_time is not None:
            cache.set(key, open_time, 60)
            return tf, int(open_time)
        cache.delete(f"marketdata:replay:{market.id}")  # candles were deleted since it was counted
    raise NoCandles(f"The stored candles of {market.exchange.slug} {market.symbol} changed; try again.")


def candles_are_live(exchange: str) -> bool:
    """Whether bots on ``exchange`` follow the exchange's own candles (else the replay feed).

    Decided by configuration (``MARKETDATA_ONLINE``, the supported catalog), not by a
    passing outage: while the exchange is unreachable a bot's candle is missing and the
    bot backs off, instead of jumping to the replayed history and back.
    """
    return exchange_gateway.online() and exchange in SUPPORTED_EXCHANGES


def last_closed_candle(
    *, exchange: str, symbol: str, timeframe: str, now_ms: int | None = None
) -> tuple[int, str]:
    """The candle clock of a bot: (open time of the newest closed ``timeframe`` candle, source).

    ``live``: by the wall clock (the exchange's candles close on it). ``replay``
    (offline): by the replay feed's clock, the same one the paper exchange prices
    from, so the candle is one that is stored; it is the newest ``timeframe``
    bucket whose stored candles the feed has all played. After the feed loops
    over its history the open time starts again from the oldest stored candle.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if candles_are_live(exchange):
        current_open = int(bucket_start(now_ms, timeframe))
        return int(bucket_start(current_open - 1, timeframe)), "live"
    market = market_get(exchange=exchange, symbol=symbol)
    source_tf, open_time = _replay_closed_open_time(market, now_ms)
    played_until = open_time + timeframe_ms(source_tf)
    return int(bucket_start(played_until, timeframe)) - timeframe_ms(timeframe), "replay"


def closed_candles(*, exchange: str, symbol: str, timeframe: str, candle_ms: int, limit: int):
    """The newest ``limit`` candles of ``timeframe`` up to and including the one opening at
    ``candle_ms``, as engine ``Candles`` (what a bot's strategy reads on a tick).

    Online, candles the store does not have yet are fetched through the keyless
    gateway and stored first (the store is the one place candles are read
    from); offline the replay feed's candles are already stored.
    """
    from apps.marketdata.selectors import candles

    step = timeframe_ms(timeframe)
    if _live_gateway(exchange) is not None:
        _store_live_candles(exchange, symbol, timeframe, candle_ms, limit)
    return candles(exchange=exchange, symbol=symbol, timeframe=timeframe, end=candle_ms + step, limit=limit)


def _store_live_candles(exchange: str, symbol: str, timeframe: str, candle_ms: int, limit: int) -> None:
    """Fetch and store the closed candles up to ``candle_ms`` that the store does not have yet."""
    market = market_get(exchange=exchange, symbol=symbol)
    step = timeframe_ms(timeframe)
    last = store.last_open_time(market_id=market.id, timeframe=timeframe)
    if last is None or last < candle_ms:
        since = (
            candle_ms - (limit - 1) * step
            if last is None
            else max(last + step, candle_ms - (limit - 1) * step)
        )
        rows = _live_call(exchange, "fetch_ohlcv_array", market.symbol, timeframe, since, limit + 1)
        if rows is not None and len(rows):
            rows = rows[rows[:, 0] <= candle_ms]  # never store the candle that is still forming
            with transaction.atomic():
                store.upsert(
                    market_id=market.id,
                    timeframe=timeframe,
                    ts=rows[:, 0].astype("int64"),
                    ohlcv=np.ascontiguousarray(rows[:, 1:6]),
                )


# ------------------------------------------------------------------ public API
# Inside ``tickers_kept``: the tickers read so far, by (exchange, symbol).
_kept_tickers: ContextVar[dict[tuple[str, str], dict[str, Any]] | None] = ContextVar(
    "kept_tickers", default=None
)


@contextmanager
def tickers_kept() -> Iterator[None]:
    """Inside this block each market's ticker is read once, then kept (in this thread or task).

    One operation sees one price: an order is checked, reserved and filled at the same ticker,
    with one cache round trip instead of one per step. A block inside another joins the outer one.
    """
    if _kept_tickers.get() is not None:
        yield
        return
    token = _kept_tickers.set({})
    try:
        yield
    finally:
        _kept_tickers.reset(token)


def ticker(*, exchange: str, symbol: str) -> dict[str, Any]:
    """Last price and 24h stats, JSON-able (prices as decimal strings), cached briefly.

    ``source`` says where it came from: ``live`` (the exchange's ticker) or
    ``replay`` (the offline feed over stored candles). Inside ``tickers_kept`` a market's
    ticker is read once.
    """
    kept = _kept_tickers.get()
    if kept is None:
        return _ticker(exchange, symbol)
    found = kept.get((exchange, symbol))
    if found is None:
        found = kept[(exchange, symbol)] = _ticker(exchange, symbol)
    return found


def _ticker(exchange: str, symbol: str) -> dict[str, Any]:
    # The paper exchange asks for the price several times per order: a warm ticker is found
    # through the market id remembered for the name, without reading the catalog row again.
    # In the cache page's "prices" family; the name is the caller's text (any characters), so the
    # key holds its digest: Redis keys stay printable and bounded.
    name = _name_digest(exchange, symbol)
    alias = f"marketdata:ticker:by-name:{name}"
    # This process remembers the id too (no cache round trip); a kept ticker is only taken when it
    # is of this exchange and symbol, so an id that came to name another market is never trusted.
    known = _market_ids.get(name)
    if known is None:
        known = cache.get(alias)
    if known is not None:
        cached = cache.get(f"marketdata:ticker:{known}")
        if cached is not None and cached.get("symbol") == symbol and cached.get("exchange") == exchange:
            _remember_id(name, known)
            return cached
        _market_ids.pop(name, None)
    market = market_get(exchange=exchange, symbol=symbol)
    key = f"marketdata:ticker:{market.id}"
    cached = cache.get(key)
    if cached is None:
        cached = _ticker_data(exchange, market, key)
    cache.set(alias, market.id, 300)
    _remember_id(name, market.id)
    return cached


def _name_digest(exchange: str, symbol: str) -> str:
    return hashlib.blake2b(f"{exchange}\x00{symbol}".encode(errors="replace"), digest_size=12).hexdigest()


# Market ids by the digest of (exchange, symbol) as ``ticker`` was asked for them; bounded, since
# the names are the callers' text.
_market_ids: dict[str, int] = {}
_MARKET_IDS_MAX = 4096


def _remember_id(name: str, market_id: int) -> None:
    if name not in _market_ids and len(_market_ids) >= _MARKET_IDS_MAX:
        _market_ids.clear()
    _market_ids[name] = market_id


def _ticker_data(exchange: str, market: Market, key: str) -> dict[str, Any]:
    raw = _live_call(exchange, "fetch_ticker", market.symbol)
    if raw is not None:
        data = _ticker_from_live(market, raw)
        ttl = settings.MARKETDATA_TICKER_CACHE_SECONDS
    else:
        data = _ticker_from_replay(market)
        ttl = 1  # the replay moves every second; cache only against bursts
    cache.set(key, data, ttl)
    return data


def _base(market: Market) -> dict[str, Any]:
    return {"exchange": market.exchange.slug, "symbol": market.symbol, "market_id": market.id}


def _pct(last: float | None, first: float | None) -> float | None:
    if last is None or not first:
        return None
    return round((last - first) / first * 100, 4)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _ticker_from_live(market: Market, raw: Ticker) -> dict[str, Any]:
    last = _float(raw.last)
    return {
        **_base(market),
        "source": "live",
        "timestamp": raw.timestamp or int(time.time() * 1000),
        "last": _quantize(raw.last, market),
        "bid": _quantize(raw.bid, market),
        "ask": _quantize(raw.ask, market),
        "open": _quantize(raw.open, market),
        "high": _quantize(raw.high, market),
        "low": _quantize(raw.low, market),
        "change": _quantize(raw.change, market),
        "percentage": _float(raw.percentage) if raw.percentage is not None else _pct(last, _float(raw.open)),
        "base_volume": _float(raw.base_volume),
        "quote_volume": _float(raw.quote_volume),
    }


def _ticker_from_replay(market: Market) -> dict[str, Any]:
    state = replay_state(market)
    price = state["price"]
    return {
        **_base(market),
        "source": "replay",
        "timestamp": state["replay_time"],
        "replay_timeframe": state["timeframe"],
        "candle": state["candle"],
        "last": _quantize(price, market),
        "bid": None,
        "ask": None,
        "open": _quantize(state["day_open"], market),
        "high": _quantize(max(state["day_high"], price), market),
        "low": _quantize(min(state["day_low"], price), market),
        "change": _quantize(price - state["day_open"], market) if state["day_open"] else None,
        "percentage": _pct(price, state["day_open"]),
        "base_volume": state["day_volume"],
        "quote_volume": None,
    }


def price_quote(*, exchange: str, symbol: str) -> PriceQuote:
    data = ticker(exchange=exchange, symbol=symbol)
    return PriceQuote(
        exchange=data["exchange"],
        symbol=data["symbol"],
        price=Decimal(data["last"]),
        timestamp=int(data["timestamp"]),
        source=data["source"],
    )


def order_book(*, exchange: str, symbol: str, limit: int = 20) -> dict[str, Any]:
    """Top ``limit`` bids/asks from the exchange, cached briefly; 503 when it is unreachable."""
    market = market_get(exchange=exchange, symbol=symbol)
    key = f"marketdata:book:{market.id}:{limit}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    raw = _live_call(exchange, "fetch_order_book", market.symbol, limit)
    if raw is None:
        raise _unavailable(exchange, "order book")
    data = {
        **_base(market),
        "source": "live",
        "timestamp": raw.timestamp,
        "bids": [[_quantize(p, market), float(a)] for p, a in raw.bids[:limit]],
        "asks": [[_quantize(p, market), float(a)] for p, a in raw.asks[:limit]],
    }
    cache.set(key, data, settings.MARKETDATA_TICKER_CACHE_SECONDS)
    return data


def trades(*, exchange: str, symbol: str, limit: int = 50) -> dict[str, Any]:
    """Recent public trades from the exchange, cached briefly; 503 when it is unreachable."""
    market = market_get(exchange=exchange, symbol=symbol)
    key = f"marketdata:trades:{market.id}:{limit}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    raw = _live_call(exchange, "fetch_trades", market.symbol, limit)
    if raw is None:
        raise _unavailable(exchange, "recent trades")
    data = {
        **_base(market),
        "source": "live",
        "trades": [
            {
                "id": t.id,
                "timestamp": t.timestamp,
                "side": t.side,
                "price": _quantize(t.price, market),
                "amount": float(t.amount),
            }
            for t in raw[-limit:]
        ],
    }
    cache.set(key, data, settings.MARKETDATA_TICKER_CACHE_SECONDS)
    return data


def _unavailable(exchange: str, what: str) -> ExchangeUnavailable:
    reason = (
        "live exchange access is off (MARKETDATA_ONLINE=false)"
        if not exchange_gateway.online()
        else f"{exchange} could not be reached"
    )
    return ExchangeUnavailable(
        f"The {what} needs the live exchange: {reason}. Prices come from the replay feed."
    )


def chart_candles(*, exchange: str, symbol: str, timeframe: str, limit: int) -> dict[str, Any]:
    """The newest ``limit`` candles of ``timeframe`` ending at the current price, with that price.

    The one place a chart's end comes from, so the chart, the ticker and the watchlist
    (``ticker``/``watched_stats``) agree. Live: the stored candles and the exchange's ticker.
    Offline the current moment is the replay feed's: candles stored after it are not
    shown (the feed has not played them yet), and the last candle is the one forming at
    the replayed moment, closing at the ticker's price (for a coarser ``timeframe``, the
    stored candles of its bucket so far plus the forming one).

    Returns ``{"candles": Candles-like columns (lists), "ticker": ticker or None}``.
    """
    from apps.marketdata.selectors import candles

    try:
        quote = ticker(exchange=exchange, symbol=symbol)
    except DomainError:
        quote = None
    if quote is None or quote["source"] != "replay":
        data = candles(exchange=exchange, symbol=symbol, timeframe=timeframe, limit=limit)
        return {"candles": _columns(data), "source_timeframe": data.source_timeframe, "ticker": quote}
    source_tf = quote["replay_timeframe"]
    forming_open, o, h, lo, c, v = quote["candle"]
    bucket = int(bucket_start(int(quote["timestamp"]), timeframe))
    data = candles(exchange=exchange, symbol=symbol, timeframe=timeframe, end=bucket, limit=max(1, limit - 1))
    columns = _columns(data)
    # The current bucket so far: its stored candles before the forming one, then the forming one.
    market = market_get(exchange=exchange, symbol=symbol)
    ts, ohlcv = store.read(
        market_id=market.id, timeframe=source_tf, start_ms=bucket, end_ms=int(forming_open)
    )
    last = float(quote["last"])  # the price every view shows: the ticker's, at the market's tick
    rows = [*ohlcv.tolist(), [o, h, lo, c, v]] if len(ts) else [[o, h, lo, c, v]]
    forming = [
        bucket,
        float(rows[0][0]),
        max(float(max(r[1] for r in rows)), last),
        min(float(min(r[2] for r in rows)), last),
        last,
        float(sum(r[4] for r in rows)),
    ]
    for name, value in zip(("timestamp", "open", "high", "low", "close", "volume"), forming, strict=True):
        columns[name].append(value)
    if len(columns["timestamp"]) > limit:
        columns = {name: values[-limit:] for name, values in columns.items()}
    return {"candles": columns, "source_timeframe": data.source_timeframe, "ticker": quote}


def _columns(data) -> dict[str, list]:
    return {
        "timestamp": [int(t) for t in data.timestamp],
        **{
            name: [float(x) for x in getattr(data, name)]
            for name in ("open", "high", "low", "close", "volume")
        },
    }


def latest_price(*, exchange: str, symbol: str) -> Decimal:
    """The market's last price as Decimal: the live ticker when reachable, else the replay feed."""
    return price_quote(exchange=exchange, symbol=symbol).price


def watched_stats(*, user) -> list[dict[str, Any]]:
    """Ticker and 24h statistics of every market ``user`` watches (an error entry where there is none)."""
    out = []
    for sub in subscription_list(user=user):
        try:
            data = ticker(exchange=sub.market.exchange.slug, symbol=sub.market.symbol)
        except DomainError as exc:
            data = {
                "exchange": sub.market.exchange.slug,
                "symbol": sub.market.symbol,
                "market_id": sub.market_id,
                "source": None,
                "last": None,
                "error": exc.message,
            }
        out.append({**data, "subscription_id": sub.id, "timeframe": sub.timeframe})
    return out


def prices_publish() -> int:
    """Publish a ``price`` event to every user for each market they watch; returns markets polled.

    One ticker per market however many users watch it (the ticker is cached
    briefly too), so the poller's cost grows with markets, not users.
    """
    watchers: dict[int, list[int]] = defaultdict(list)
    markets: dict[int, tuple[str, str]] = {}
    rows = Subscription.objects.values_list(
        "user_id", "market_id", "market__exchange__slug", "market__symbol"
    )
    for user_id, market_id, exchange, symbol in rows:
        watchers[market_id].append(user_id)
        markets[market_id] = (exchange, symbol)
    for market_id, (exchange, symbol) in markets.items():
        try:
            data = ticker(exchange=exchange, symbol=symbol)
        except DomainError as exc:  # no data for one market must not stop the others
            logger.info("no price for %s %s: %s", exchange, symbol, exc.message)
            continue
        for user_id in watchers[market_id]:
            publish_event(user_id, "price", data)
    return len(markets)
