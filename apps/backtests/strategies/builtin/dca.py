"""Dollar-cost averaging with safety orders and a take-profit (the "DCA bot").

Event style, driven by fills (``on_fill``): a cycle opens with a market base
order; its fill places the ladder of safety buy limits below the entry and a
take-profit sell above the average entry; each safety fill moves the
take-profit to the new average; the take-profit fill cancels what is left and
opens the next cycle.
"""

from __future__ import annotations

from typing import Any

from apps.backtests.engine import Param, Strategy
from apps.backtests.engine.errors import ParamError


def safety_ladder(
    entry: float, count: int, deviation: float, step_scale: float, volume_scale: float
) -> list[tuple[float, float]]:
    """``(price, size multiplier)`` of each safety order below ``entry``.

    The first is ``deviation`` below the entry; each next one is a further
    ``deviation * step_scale**k`` below, with ``volume_scale**k`` times the size
    of the first safety order.
    """
    ladder = []
    total = 0.0
    for k in range(count):
        total += deviation * step_scale**k
        ladder.append((entry * (1.0 - total), volume_scale**k))
    return ladder


class Dca(Strategy):
    name = "dca"
    description = (
        "DCA bot: a market base order, safety buy limits at growing distances below the entry with "
        "growing sizes, and a take-profit sell above the average entry; repeats after each take-profit."
    )
    params = {
        "base_order": Param("float", 0.1, min=0.001, max=1.0, help="base order, fraction of equity"),
        "safety_order": Param("float", 0.1, min=0.0, max=1.0, help="first safety order, fraction of equity"),
        "max_safety_orders": Param("int", 4, min=0, max=50, step=1, help="number of safety orders"),
        "price_deviation": Param("float", 0.01, min=0.0005, max=0.5, help="first safety order distance"),
        "step_scale": Param("float", 1.2, min=0.1, max=5.0, help="distance multiplier per safety order"),
        "volume_scale": Param("float", 1.4, min=0.1, max=5.0, help="size multiplier per safety order"),
        "take_profit": Param("float", 0.015, min=0.0005, max=1.0, help="target above the average entry"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.p
        errors = {}
        needed = p.base_order + p.safety_order * sum(p.volume_scale**k for k in range(p.max_safety_orders))
        if needed > 1.0 + 1e-9:
            errors["safety_order"] = (
                f"base and safety orders need {needed:.0%} of equity; reduce them to at most 100%"
            )
        deepest = sum(p.price_deviation * p.step_scale**k for k in range(p.max_safety_orders))
        if deepest >= 1.0:
            errors["price_deviation"] = "the deepest safety order would be at or below a price of zero"
        if errors:
            raise ParamError(errors)

    def initialize(self) -> None:
        self.cycle_equity = 0.0
        self.base_id: int | None = None
        self.take_profit_id: int | None = None
        self.safety_ids: set[int] = set()
        self.waiting = False  # a base order is on its way

    def _open_cycle(self, price: float) -> None:
        self.cycle_equity = self.get_equity()
        self.base_id = self.buy(self.cycle_equity * self.p.base_order / price)
        self.waiting = True

    def _place_take_profit(self) -> None:
        if self.take_profit_id is not None:
            self.cancel(self.take_profit_id)
        size = self.get_position_size()
        entry = self.get_entry_price()
        if size > 0 and entry:
            self.take_profit_id = self.sell_limit(size, entry * (1.0 + self.p.take_profit))

    def on_data(self, candle: Any) -> None:
        if not self.waiting and self.get_position_size() <= 0 and self.base_id is None:
            self._open_cycle(candle.close)

    def on_fill(self, fill: Any) -> None:
        p = self.p
        if fill.id == self.base_id:
            self.waiting = False
            first_quote = self.cycle_equity * p.safety_order
            if first_quote > 0:
                ladder = safety_ladder(
                    fill.filled_price, p.max_safety_orders, p.price_deviation, p.step_scale, p.volume_scale
                )
                for price, multiplier in ladder:
                    self.safety_ids.add(self.buy_limit(first_quote * multiplier / price, price))
            self._place_take_profit()
        elif fill.id in self.safety_ids:
            self.safety_ids.discard(fill.id)
            self._place_take_profit()
        elif fill.id == self.take_profit_id:
            self.take_profit_id = None
            for order_id in self.safety_ids:
                self.cancel(order_id)
            self.safety_ids.clear()
            # Next cycle right away (fills at the next open), priced off this fill.
            self.base_id = None
            self._open_cycle(fill.filled_price)
