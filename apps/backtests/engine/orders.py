"""Order objects used by the simulated broker, and their public snapshot ``OrderInfo``."""

from __future__ import annotations

from dataclasses import dataclass

from .fills import trigger_direction


@dataclass(frozen=True)
class OrderInfo:
    """Read-only view of an order given to strategies (``get_open_orders``, ``on_fill``)."""

    id: int
    type: str
    side: str
    amount: float | None
    price: float | None
    stop_price: float | None
    trail: float | None
    reduce_only: bool
    status: str
    filled_size: float
    filled_price: float | None
    fill_time: int | None
    reason: str


class Order:
    """A working order. ``direction``/``level`` cache the trigger (see ``fills``)."""

    __slots__ = (
        "amount",
        "bracket",
        "close_fraction",
        "direction",
        "extreme",
        "fill_time",
        "filled_price",
        "filled_size",
        "id",
        "level",
        "leverage",
        "price",
        "reason",
        "reduce_only",
        "side",
        "status",
        "stop_price",
        "trail",
        "triggered",
        "type",
    )

    def __init__(
        self,
        id: int,
        type: str,
        side: int,
        amount: float | None,
        *,
        price: float | None = None,
        stop_price: float | None = None,
        trail: float | None = None,
        reduce_only: bool = False,
        leverage: float | None = None,
        close_fraction: float | None = None,
        bracket: tuple[float | None, float | None, float | None] | None = None,
        reason: str = "signal",
        extreme: float = 0.0,
    ) -> None:
        self.id = id
        self.type = type
        self.side = side
        self.amount = amount
        self.price = price
        self.stop_price = stop_price
        self.trail = trail
        self.reduce_only = reduce_only
        self.status = "open"
        self.leverage = leverage
        self.close_fraction = close_fraction
        self.bracket = bracket
        self.reason = reason
        self.triggered = False
        self.extreme = extreme
        self.filled_size = 0.0
        self.filled_price: float | None = None
        self.fill_time: int | None = None
        self.direction = 0
        self.level = 0.0
        self.refresh_trigger()

    def refresh_trigger(self) -> None:
        """Recompute ``direction`` and ``level`` from the order's state."""
        kind = self.type
        if kind == "market":
            return
        if kind == "stop_limit" and self.triggered:
            kind = "limit"
        self.direction = trigger_direction(kind, self.side)
        if kind in ("limit", "take_profit"):
            self.level = self.price  # type: ignore[assignment]
        elif kind == "trailing_stop":
            trail = self.trail or 0.0
            self.level = self.extreme * (1.0 - trail) if self.side < 0 else self.extreme * (1.0 + trail)
        else:
            self.level = self.stop_price  # type: ignore[assignment]

    def info(self) -> OrderInfo:
        """Snapshot for strategy code."""
        return OrderInfo(
            id=self.id,
            type=self.type,
            side="buy" if self.side > 0 else "sell",
            amount=self.amount,
            price=self.price,
            stop_price=self.stop_price if self.type != "trailing_stop" else self.level,
            trail=self.trail,
            reduce_only=self.reduce_only,
            status=self.status,
            filled_size=self.filled_size,
            filled_price=self.filled_price,
            fill_time=self.fill_time,
            reason=self.reason,
        )
