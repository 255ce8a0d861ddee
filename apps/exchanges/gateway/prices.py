"""Where the paper exchange gets prices: a small protocol, the market-data service, and a replay.

``price(symbol)`` is the price a market order would trade at *now*;
``candles_since(symbol, since_ms)`` returns the *closed* candles whose open time
is ``>= since_ms`` (oldest first), which is what fills resting orders;
``now_ms()`` is the source's clock (wall time live, the replay cursor offline).
"""

from __future__ import annotations

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

    def now_ms(self) -> int: ...


class ReplayPriceSource:
    """Plays recorded candles forward: at cursor ``i`` the candle ``i`` is forming.

    The current price is candle ``i``'s open and candles ``< i`` are closed, so a
    market order placed at cursor ``i`` fills at ``open[i]`` (the backtest's
    "next open" rule for a decision taken on candle ``i-1``), and resting orders
    placed then can fill from candle ``i`` on. ``advance()`` closes candles.
    """

    def __init__(self, series: dict[str, Any], *, cursor: int = 1) -> None:
        # ``series``: symbol -> engine ``Candles`` or anything with the same arrays.
        self._series = {symbol: self._arrays(data) for symbol, data in series.items()}
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
        else:  # a DataFrame with a UTC DatetimeIndex (what marketdata.selectors.candles returns)
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

    def now_ms(self) -> int:
        return int(self._series[next(iter(self._series))][0][self.cursor]) if self._series else 0


class MarketDataPriceSource:
    """Prices from ``apps.marketdata.selectors``: live ticker when online, else the replay feed.

    Fills use the stored 1m candles (the finest timeframe the candle store keeps
    fresh); only candles that have closed by now are returned.
    """

    def __init__(self, exchange: str = "binance", timeframe: str = "1m") -> None:
        self.exchange = exchange
        self.timeframe = timeframe

    def price(self, symbol: str) -> Decimal:
        from apps.marketdata import selectors
        from apps.marketdata.errors import UnknownMarket

        try:
            value = selectors.latest_price(exchange=self.exchange, symbol=symbol)
        except UnknownMarket as exc:
            raise InvalidOrder(exc.message, fields={"symbol": "unknown"}) from exc
        except Exception as exc:  # the market-data service could not produce a price
            raise ExchangeUnavailable(f"No price available for {symbol}: {exc}") from exc
        price = to_decimal(value)
        if price is None or price <= 0:
            raise ExchangeUnavailable(f"No price available for {symbol}.")
        return price

    def _arrays(self, symbol: str, since_ms: int):
        from apps.marketdata import selectors
        from apps.marketdata.errors import NoCandles, UnknownMarket
        from apps.marketdata.timeframes import timeframe_ms

        try:
            arrays = selectors.candle_arrays(
                exchange=self.exchange, symbol=symbol, timeframe=self.timeframe, start=since_ms
            )
        except (NoCandles, UnknownMarket):
            return None, 0
        return arrays, timeframe_ms(self.timeframe)

    def candles_since(self, symbol: str, since_ms: int) -> list[Bar]:
        arrays, step = self._arrays(symbol, since_ms)
        if arrays is None:
            return []
        now = self.now_ms()
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

    def last_volume(self, symbol: str) -> float | None:
        bars = self.candles_since(symbol, self.now_ms() - 5 * 60_000)
        return bars[-1].volume if bars else None

    def now_ms(self) -> int:
        return int(time.time() * 1000)
