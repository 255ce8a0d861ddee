"""Strategy base classes: vectorized ``SignalStrategy`` and event-style ``Strategy``.

The same ``Strategy`` object runs in a backtest (with ``SimulatedBroker``) and,
later, paper or live trading (with another ``Broker``): it only talks to
``self.broker`` through the trading and information methods below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .params import Param, ParamSet, validate_params

if TYPE_CHECKING:
    from .candles import Candles
    from .orders import OrderInfo
    from .protocol import Broker


@dataclass
class Signals:
    """Boolean arrays aligned to the candles; a signal on candle i acts at the open of i+1.

    ``stop_loss``/``take_profit``/``trailing_stop`` are fractions of the entry price
    (e.g. 0.02) that override the config defaults for this strategy. When an entry
    and an exit of the same direction are both true on a candle, the exit wins;
    long and short entries on the same candle cancel out.
    """

    long_entries: np.ndarray
    long_exits: np.ndarray | None = None
    short_entries: np.ndarray | None = None
    short_exits: np.ndarray | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None


class _ParamsMixin:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}

    def __init__(self, **params: Any) -> None:
        self.p = ParamSet(validate_params(type(self).params, params))

    @classmethod
    def validate(cls, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validated and defaulted parameters (raises ``ParamError``)."""
        return validate_params(cls.params, params)


class SignalStrategy(_ParamsMixin):
    """Vectorized strategy: compute ``Signals`` for all candles at once.

    Subclasses set ``name``, ``description``, ``params`` and implement ``signals``.
    ``self.p`` holds the validated parameters (``self.p.fast``).
    """

    style: ClassVar[str] = "signal"

    def signals(self, data: Candles) -> Signals:
        """Return entry/exit arrays for ``data`` (a ``Candles``; ``data.close`` etc.)."""
        raise NotImplementedError


class Candle:
    """The current candle passed to ``on_data``; one object is reused for speed."""

    __slots__ = ("close", "high", "index", "low", "open", "timestamp", "volume")

    def __init__(self) -> None:
        self.index = -1
        self.timestamp = 0
        self.open = self.high = self.low = self.close = self.volume = 0.0

    def __repr__(self) -> str:
        return (
            f"Candle(timestamp={self.timestamp}, open={self.open}, high={self.high}, "
            f"low={self.low}, close={self.close}, volume={self.volume})"
        )


class History:
    """The last ``n`` candles up to and including the current one.

    Each column is a fresh copy of that window, never a view: a view's ``base``
    would be the whole series, future candles included.
    """

    __slots__ = ("_data", "_hi", "_lo")

    def __init__(self, data: Candles, lo: int, hi: int) -> None:
        self._data, self._lo, self._hi = data, lo, hi

    def __len__(self) -> int:
        return self._hi - self._lo

    def _column(self, name: str) -> np.ndarray:
        return getattr(self._data, name)[self._lo : self._hi].copy()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in ("timestamp", "open", "high", "low", "close", "volume"):
            raise KeyError(name)
        return self._column(name)

    @property
    def timestamp(self) -> np.ndarray:
        return self._column("timestamp")

    @property
    def open(self) -> np.ndarray:
        return self._column("open")

    @property
    def high(self) -> np.ndarray:
        return self._column("high")

    @property
    def low(self) -> np.ndarray:
        return self._column("low")

    @property
    def close(self) -> np.ndarray:
        return self._column("close")

    @property
    def volume(self) -> np.ndarray:
        return self._column("volume")


class Strategy(_ParamsMixin):
    """Event-style strategy: ``initialize`` once, ``on_data(candle)`` per candle.

    Orders placed in ``on_data`` act from the next candle: market orders fill at
    its open, other orders rest and fill by the rules in ``engine.fills``.
    Amounts are base-asset units (fractional); ``amount=None`` on ``buy``/``sell``
    uses the configured position sizing. Optional hook: ``on_fill(self, fill)``
    is called right after one of the strategy's orders fills (before the next
    ``on_data``), with an ``OrderInfo``.
    """

    style: ClassVar[str] = "event"
    broker: Broker  # a BrokerView during a backtest: orders, account and history, no future candles
    candle: Candle

    def initialize(self) -> None:
        """Called once before the first candle."""

    def on_data(self, candle: Candle) -> None:
        """Called for every candle, after that candle's fills."""
        raise NotImplementedError

    def history(self, n: int) -> History:
        """The last ``n`` candles including the current one (fewer at the start)."""
        return self.broker.history(n)

    # trading API
    def buy(
        self,
        amount: float | None = None,
        leverage: float | None = None,
        *,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing_stop: float | None = None,
    ) -> int:
        """Market buy at the next open; bracket fractions attach exit orders to the fill."""
        return self.broker.market(
            1,
            amount,
            leverage=leverage,
            stop_loss=stop_loss,
            take_profit=take_profit,
            trailing_stop=trailing_stop,
        )

    def sell(
        self,
        amount: float | None = None,
        leverage: float | None = None,
        *,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing_stop: float | None = None,
    ) -> int:
        """Market sell at the next open (closes/reduces a long, or opens a short if allowed)."""
        return self.broker.market(
            -1,
            amount,
            leverage=leverage,
            stop_loss=stop_loss,
            take_profit=take_profit,
            trailing_stop=trailing_stop,
        )

    def close_position(self, percentage: float = 100.0) -> int | None:
        """Market order at the next open closing ``percentage`` of the position (None if flat)."""
        return self.broker.close_position(percentage)

    def buy_limit(self, amount: float, price: float) -> int:
        """Resting limit buy at ``price``."""
        return self.broker.limit(1, amount, price)

    def sell_limit(self, amount: float, price: float) -> int:
        """Resting limit sell at ``price``."""
        return self.broker.limit(-1, amount, price)

    def stop_market(self, amount: float | None, stop_price: float, side: str | None = None) -> int:
        """Stop-market order; ``side`` defaults to closing the position (amount None: all of it)."""
        return self.broker.stop_market(_side(side), amount, stop_price)

    def stop_limit(
        self,
        amount: float | None,
        stop_price: float,
        limit_price: float,
        side: str | None = None,
    ) -> int:
        """Stop-limit order: at ``stop_price`` becomes a limit order at ``limit_price``."""
        return self.broker.stop_limit(_side(side), amount, stop_price, limit_price)

    def take_profit(self, amount: float | None, price: float, side: str | None = None) -> int:
        """Take-profit (market-if-touched) order; defaults to closing the position."""
        return self.broker.take_profit(_side(side), amount, price)

    def trailing_stop(self, trail: float, amount: float | None = None, side: str | None = None) -> int:
        """Trailing stop ``trail`` (fraction, 0.02 = 2%) behind the best price since placement."""
        return self.broker.trailing_stop(_side(side), amount, trail)

    def cancel(self, order_id: int) -> bool:
        """Cancel a resting order; False if it is no longer open."""
        return self.broker.cancel(order_id)

    def cancel_all(self) -> int:
        """Cancel every open order; returns how many."""
        return self.broker.cancel_all()

    # information API
    def get_position_size(self) -> float:
        """Signed position size in base units (negative for a short)."""
        return self.broker.position_size()

    def get_cash(self) -> float:
        """Quote balance (spot) or wallet balance (futures)."""
        return self.broker.cash()

    def get_equity(self) -> float:
        """Cash plus the position marked at the current close."""
        return self.broker.equity()

    def get_margin_ratio(self) -> float:
        """Maintenance margin over margin balance (1.0 = liquidation); 0 when flat or spot."""
        return self.broker.margin_ratio()

    def get_entry_price(self) -> float | None:
        """Average entry price of the open position, None when flat."""
        return self.broker.entry_price()

    def get_liquidation_price(self) -> float | None:
        """Liquidation price of the open futures position, None when there is none."""
        return self.broker.liquidation_price()

    def get_open_orders(self) -> list[OrderInfo]:
        """Snapshots of the open orders."""
        return self.broker.open_orders()


def _side(side: str | None) -> int:
    if side is None:
        return 0
    if side in ("buy", "long"):
        return 1
    if side in ("sell", "short"):
        return -1
    raise ValueError("side must be 'buy' or 'sell'")
