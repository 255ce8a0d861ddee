"""Grid trading: buy limits on grid lines below the price, a sell one line higher for each fill.

Event style and driven by fills (``on_fill``): after the grid is laid out on the
first candle, nothing runs per candle, so a year of one-minute candles costs
only the engine's order matching.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.backtests.engine import Param, Strategy
from apps.backtests.engine.errors import ParamError


def grid_prices(lower: float, upper: float, levels: int, spacing: str) -> np.ndarray:
    """``levels`` grid lines from ``lower`` to ``upper`` inclusive.

    Arithmetic spacing keeps a constant price step, geometric a constant ratio
    (the same percentage between lines, better for wide ranges).
    """
    if spacing == "geometric":
        return lower * (upper / lower) ** (np.arange(levels) / (levels - 1))
    return np.linspace(lower, upper, levels)


class Grid(Strategy):
    name = "grid"
    description = (
        "Grid trading in a price range: a buy limit on every grid line below the price, and for each "
        "filled buy a sell limit one line higher (and again a buy after that sell). Lines above the "
        "starting price are stocked with one market buy at the start. lower/upper 0 = the first "
        "close -/+ range_pct."
    )
    params = {
        "lower": Param("float", 0.0, min=0.0, help="lowest grid line (0: first close * (1 - range_pct))"),
        "upper": Param("float", 0.0, min=0.0, help="highest grid line (0: first close * (1 + range_pct))"),
        "range_pct": Param("float", 0.1, min=0.001, max=0.9, help="half-width of an automatic range"),
        "levels": Param("int", 10, min=2, max=500, step=1, help="number of grid lines"),
        "spacing": Param("choice", "arithmetic", choices=("arithmetic", "geometric"), help="line spacing"),
        "investment": Param("float", 0.95, min=0.01, max=1.0, help="fraction of equity put in the grid"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.p.lower and self.p.upper and self.p.lower >= self.p.upper:
            raise ParamError({"lower": f"must be less than upper ({self.p.upper})"})

    def initialize(self) -> None:
        self.prices: np.ndarray | None = None
        self.quote_per_line = 0.0
        self.line_of_order: dict[int, int] = {}  # open order id -> grid line
        self.stock_order: int | None = None
        self.stock_lines: list[int] = []

    def _lay_out(self, close: float) -> None:
        lower = self.p.lower or close * (1.0 - self.p.range_pct)
        upper = self.p.upper or close * (1.0 + self.p.range_pct)
        if lower >= upper:
            raise ParamError({"lower": f"the grid range is empty ({lower:g} >= {upper:g})"})
        self.prices = grid_prices(lower, upper, self.p.levels, self.p.spacing)
        # Each line but the top one holds one buy's worth of quote.
        self.quote_per_line = self.get_equity() * self.p.investment / (self.p.levels - 1)
        stock = 0.0
        for line in range(self.p.levels - 1):
            price = float(self.prices[line])
            amount = self.quote_per_line / price
            if price < close:
                self.line_of_order[self.buy_limit(amount, price)] = line
            else:
                self.stock_lines.append(line)
                stock += amount
        if stock > 0:
            self.stock_order = self.buy(stock)

    def on_data(self, candle: Any) -> None:
        if self.prices is None:
            self._lay_out(candle.close)

    def on_fill(self, fill: Any) -> None:
        prices = self.prices
        if fill.id == self.stock_order:
            self.stock_order = None
            for line in self.stock_lines:
                amount = self.quote_per_line / float(prices[line])
                self.line_of_order[self.sell_limit(amount, float(prices[line + 1]))] = line + 1
            return
        line = self.line_of_order.pop(fill.id, None)
        if line is None:
            return
        if fill.side == "buy":
            self.line_of_order[self.sell_limit(fill.filled_size, float(prices[line + 1]))] = line + 1
        else:
            below = line - 1
            amount = self.quote_per_line / float(prices[below])
            self.line_of_order[self.buy_limit(amount, float(prices[below]))] = below
