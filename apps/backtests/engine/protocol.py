"""The ``Broker`` protocol: everything a ``Strategy`` may ask of the market it trades.

``SimulatedBroker`` (``engine.broker``) implements it for backtests; the bot
runtime implements it for paper and live trading, so one strategy object runs
unchanged in both. A strategy reaches the broker only through
``Strategy.broker``, which is a ``BrokerView`` (``engine.broker``): it exposes
these methods and nothing else, in particular no candle data beyond the current
candle (``history`` returns copies bounded at the current candle).

Conventions: ``side`` is +1 buy, -1 sell, 0 "close the open position" (then the
order is reduce-only); amounts are base-asset units, ``None`` meaning the
configured sizing (market orders) or the whole position (exits); prices are
quote units; every order method returns the order id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from .orders import OrderInfo


class HistoryView(Protocol):
    """What ``Broker.history`` returns (``engine.strategy.History`` is the one implementation):
    the columns of the last ``n`` candles, up to and including the current one."""

    def __len__(self) -> int: ...

    def __getitem__(self, name: str) -> np.ndarray: ...

    @property
    def timestamp(self) -> np.ndarray: ...

    @property
    def open(self) -> np.ndarray: ...

    @property
    def high(self) -> np.ndarray: ...

    @property
    def low(self) -> np.ndarray: ...

    @property
    def close(self) -> np.ndarray: ...

    @property
    def volume(self) -> np.ndarray: ...


@runtime_checkable
class Broker(Protocol):
    """What a ``Strategy`` may call (``Strategy.buy``/``sell``/... wrap these)."""

    # ------------------------------------------------------------------ orders
    def market(
        self,
        side: int,
        amount: float | None,
        *,
        leverage: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing_stop: float | None = None,
    ) -> int:
        """Market order; ``leverage`` is capped by the market's leverage tiers."""
        ...

    def close_position(self, percentage: float = 100.0) -> int | None:
        """Reduce-only market order for ``percentage`` of the position (None when flat)."""
        ...

    def limit(self, side: int, amount: float, price: float) -> int: ...

    def stop_market(self, side: int, amount: float | None, stop_price: float) -> int: ...

    def stop_limit(self, side: int, amount: float | None, stop_price: float, limit_price: float) -> int: ...

    def take_profit(self, side: int, amount: float | None, price: float) -> int: ...

    def trailing_stop(self, side: int, amount: float | None, trail: float) -> int: ...

    def cancel(self, order_id: int) -> bool: ...

    def cancel_all(self) -> int: ...

    def open_orders(self) -> list[OrderInfo]: ...

    # ------------------------------------------------------------- account
    def position_size(self) -> float:
        """Signed position size in base units (negative for a short)."""
        ...

    def cash(self) -> float:
        """Quote balance (spot) or wallet balance (futures)."""
        ...

    def equity(self) -> float:
        """Cash plus the position marked at the current (mark) price."""
        ...

    def margin_ratio(self) -> float: ...

    def entry_price(self) -> float | None: ...

    def liquidation_price(self) -> float | None: ...

    # ------------------------------------------------------------- market data
    def history(self, n: int) -> HistoryView:
        """The last ``n`` candles up to and including the current one; never later ones."""
        ...
