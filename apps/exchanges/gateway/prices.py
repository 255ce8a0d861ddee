"""Where the paper exchange gets prices: a small protocol, the market-data service, and a replay.

``price(symbol)`` is the price a market order would trade at *now*;
``candles_since(symbol, since_ms)`` returns the *closed* candles whose open time
is ``>= since_ms`` (oldest first), which is what fills resting orders;
``now_ms()`` is the source's clock (wall time live, the replay cursor offline).
A source may also offer ``funding_rates(symbol, start_ms, end_ms)``: the
perpetual's funding history as ``[[funding_time_ms, rate], ...]`` (the paper
exchange's futures charge it; without it they use the account's constant rate).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import numpy as np

from apps.exchanges.gateway.base import to_decimal
from apps.exchanges.gateway.errors import ExchangeUnavailable, InvalidOrder


@dataclass(frozen=True)
class Bar:
    timestamp: int  # open time, ms
    open: float
    high: float
    low: float
    close: float
    volume: float


class PriceSource(Protocol):
    def price(self, symbol: str) -> Decimal: ...

    def candles_since(self, symbol: str, since_ms: int) -> list[Bar]: ...

    def last_volume(self, symbol: str) -> float | None: ...

    def now_ms(self, symbol: str | None = None) -> int: ...


class ReplayPriceSource:
    """Plays recorded candles forward: at cursor ``i`` the candle ``i`` is forming.

    The current price is candle ``i``'s open and candles ``< i`` are closed, so a
    market order placed at cursor ``i`` fills at ``open[i]`` (the backtest's
    "next open" rule for a decision taken on candle ``i-1``), and resting orders
    placed then can fill from candle ``i`` on. ``advance()`` closes candles.
    """

    def __init__(
        self, series: dict[str, Any], *, cursor: int = 1, funding: dict[str, Any] | None = None
    ) -> None:
        # ``series``: symbol -> engine ``Candles`` or anything with the same arrays;
        # ``funding``: symbol -> ``[[funding_time_ms, rate], ...]``.
        self._series = {symbol: self._arrays(data) for symbol, data in series.items()}
        self._funding = {
            symbol: [[int(t), float(r)] for t, r in rows] for symbol, rows in (funding or {}).items()
        }
        lengths = {len(arrays[0]) for arrays in self._series.values()}
        self.length = min(lengths) if lengths else 0
        self.cursor = cursor

    @staticmethod
    def _arrays(data: Any) -> tuple[np.ndarray, ...]:
        if hasattr(data, "timestamp") and not hasattr(data, "columns"):
            ts = np.asarray(data.timestamp, dtype=np.int64)
            cols = [
                np.asarray(getattr(data, name), dtype=np.float64)
                for name in ("open", "high", "low", "close", "volume")
            ]
        else:  # a DataFrame with a UTC DatetimeIndex
            ts = data.index.asi8 // 1_000_000 if data.index.dtype.kind == "M" else np.asarray(data.index)
            ts = np.asarray(ts, dtype=np.int64)
            cols = [
                data[name].to_numpy(dtype=np.float64) for name in ("open", "high", "low", "close", "volume")
            ]
        return (ts, *cols)

    def _get(self, symbol: str) -> tuple[np.ndarray, ...]:
        try:
            return self._series[symbol]
        except KeyError:
            raise InvalidOrder(
                f"No prices for {symbol} on the paper exchange.", fields={"symbol": "unknown"}
            ) from None

    def advance(self, candles: int = 1) -> None:
        self.cursor = min(self.cursor + candles, self.length - 1)

    def bar(self, symbol: str, index: int) -> Bar:
        ts, o, h, low, c, v = self._get(symbol)
        return Bar(
            int(ts[index]),
            float(o[index]),
            float(h[index]),
            float(low[index]),
            float(c[index]),
            float(v[index]),
        )

    def price(self, symbol: str) -> Decimal:
        return Decimal(repr(float(self._get(symbol)[1][self.cursor])))

    def candles_since(self, symbol: str, since_ms: int) -> list[Bar]:
        ts = self._get(symbol)[0]
        first = int(np.searchsorted(ts, since_ms, side="left"))
        return [self.bar(symbol, i) for i in range(first, self.cursor)]

    def last_volume(self, symbol: str) -> float | None:
        return float(self._get(symbol)[5][self.cursor - 1]) if self.cursor > 0 else None

    def now_ms(self, symbol: str | None = None) -> int:
        return int(self._series[next(iter(self._series))][0][self.cursor]) if self._series else 0

    def funding_rates(self, symbol: str, start_ms: int, end_ms: int) -> list[list]:
        return [row for row in self._funding.get(symbol, []) if start_ms <= row[0] <= end_ms]


class MarketDataPriceSource:
    """Prices from the market-data service: the live ticker when online, else its replay feed.

    Resting orders fill on the market's finest stored candles that have closed by
    the source's clock. The clock is wall time for live quotes and the replay
    feed's own time offline (the feed plays stored candles forward), so paper
    orders also fill while the platform runs without an exchange connection.
    The replay feed loops over the stored history; after a wrap-around its
    clock restarts and resting orders wait until it passes their placement again.
    """

    def __init__(self, exchange: str = "binance", timeframe: str | None = None) -> None:
        self.exchange = exchange
        self.timeframe = timeframe
        self._clock: dict[str, int] = {}
        self._timeframes: dict[str, str | None] = {}

    def price(self, symbol: str) -> Decimal:
        from apps.marketdata import live
        from apps.marketdata.errors import NoCandles, UnknownMarket

        try:
            quote = live.price_quote(exchange=self.exchange, symbol=symbol)
        except UnknownMarket as exc:
            raise InvalidOrder(exc.message, fields={"symbol": "unknown"}) from None
        except NoCandles as exc:
            raise ExchangeUnavailable(exc.message) from None
        except Exception as exc:  # the market-data service could not produce a price
            raise ExchangeUnavailable(f"No price available for {symbol}: {type(exc).__name__}") from None
        self._clock[symbol] = quote.timestamp if quote.source == "replay" else int(time.time() * 1000)
        price = to_decimal(quote.price)
        if price is None or price <= 0:
            raise ExchangeUnavailable(f"No price available for {symbol}.")
        return price

    def _timeframe(self, symbol: str) -> str | None:
        if self.timeframe:
            return self.timeframe
        if symbol in self._timeframes:
            return self._timeframes[symbol]
        from django.core.cache import cache

        from apps.marketdata import selectors

        # One probe per timeframe: cached briefly, as every order and matching pass asks.
        key = f"paper:timeframe:{self.exchange}:{symbol}"
        found = cache.get(key)
        if found is None:
            market = selectors.market_get(exchange=self.exchange, symbol=symbol)
            stored = selectors.stored_timeframes(market=market)
            found = stored[0] if stored else ""
            cache.set(key, found, 60)
        self._timeframes[symbol] = found or None
        return found or None

    def candles_since(self, symbol: str, since_ms: int) -> list[Bar]:
        from apps.marketdata import selectors
        from apps.marketdata.errors import NoCandles, UnknownMarket
        from apps.marketdata.timeframes import timeframe_ms

        try:
            timeframe = self._timeframe(symbol)
            if timeframe is None:
                return []
            self._refresh_clock(symbol)  # the replay feed moves on between calls
            now = self.now_ms(symbol)
            arrays = selectors.candles(
                exchange=self.exchange, symbol=symbol, timeframe=timeframe, start=since_ms
            )
        except (NoCandles, UnknownMarket):
            return []
        step = timeframe_ms(timeframe)
        return [
            Bar(int(t), float(o), float(h), float(low), float(c), float(v))
            for t, o, h, low, c, v in zip(
                arrays.timestamp,
                arrays.open,
                arrays.high,
                arrays.low,
                arrays.close,
                arrays.volume,
                strict=True,
            )
            if t + step <= now
        ]

    def funding_rates(self, symbol: str, start_ms: int, end_ms: int) -> list[list]:
        """The stored funding history of the perpetual ``symbol`` (empty when none is stored)."""
        from apps.marketdata.errors import UnknownMarket
        from apps.marketdata.selectors import funding_rates, market_get

        try:
            market = market_get(exchange=self.exchange, symbol=symbol)
        except UnknownMarket:
            return []
        return funding_rates(market=market, start_ms=start_ms, end_ms=end_ms + 1)

    def last_volume(self, symbol: str) -> float | None:
        from apps.marketdata.errors import NoCandles, UnknownMarket
        from apps.marketdata.timeframes import timeframe_ms

        try:
            timeframe = self._timeframe(symbol)
        except (NoCandles, UnknownMarket):
            return None
        if timeframe is None:
            return None
        from django.core.cache import cache

        # Every market order asks (it sizes the slippage): the volume of the candle that closed
        # last by this source's clock is kept until the next one closes. Kept only once that
        # candle is stored: while a refresh is late the newest stored one answers and is read again.
        step = timeframe_ms(timeframe)
        now = self.now_ms(symbol)
        key = f"paper:volume:{self.exchange}:{symbol}:{timeframe}:{now // step}"
        with contextlib.suppress(Exception):  # the cache is down: read the candles
            kept = cache.get(key)
            if kept is not None:
                return kept
        bars = self.candles_since(symbol, now - 3 * step)  # the newest closed candle is among these
        if not bars:
            return None
        if bars[-1].timestamp == (now // step - 1) * step:
            with contextlib.suppress(Exception):
                cache.set(key, bars[-1].volume, max(1, min(60, step // 1000)))
        return bars[-1].volume

    def _refresh_clock(self, symbol: str) -> None:
        try:
            self.price(symbol)  # cached briefly by the market-data service
        except (InvalidOrder, ExchangeUnavailable):
            pass

    def now_ms(self, symbol: str | None = None) -> int:
        if symbol is not None and symbol not in self._clock:
            self._refresh_clock(symbol)
        if symbol is not None and symbol in self._clock:
            return self._clock[symbol]
        return int(time.time() * 1000)
