"""A bot's performance from its fills: round trips, position, P&L and the equity curve.

Pure (numpy only, no Django) like the engine whose metrics it feeds: the
selector ``apps.bots.selectors.bot_performance`` reads the fills and candles and
hands them here, then passes the result to ``apps.backtests.engine.compute_metrics``
so a bot is measured exactly like a backtest.

Accounting is one-way (a net position per market) with an average entry price,
the same rule as ``apps.orders.services._apply_to_position``: a fill that adds to
the position moves the average entry, one that reduces it realizes
``closed * (price - entry)``. A *trade* (for win rate, expectancy, ...) runs from
flat to flat; a flip closes one trade and opens the next. Fees count in the quote
currency (a fee charged in the base asset is valued at the fill's price).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class BotFill:
    timestamp_ms: int
    side: str  # "buy" | "sell"
    price: float
    amount: float
    fee_quote: float


@dataclass
class Ledger:
    """The running state after a sequence of fills."""

    size: float = 0.0  # signed: > 0 long, < 0 short
    average_entry: float | None = None
    realized_pnl: float = 0.0  # before fees
    fees: float = 0.0
    cash_flow: float = 0.0  # quote received minus quote paid, fees included
    trades: list[dict] = field(default_factory=list)
    _open_ms: int | None = None
    _trade_pnl: float = 0.0
    _trade_fees: float = 0.0
    _trade_cost: float = 0.0

    @property
    def side(self) -> str:
        return "flat" if self.size == 0 else ("long" if self.size > 0 else "short")

    def unrealized(self, price: float | None) -> float:
        if not self.size or price is None or self.average_entry is None:
            return 0.0
        return self.size * (price - self.average_entry)

    def apply(self, fill: BotFill) -> None:
        delta = fill.amount if fill.side == "buy" else -fill.amount
        self.fees += fill.fee_quote
        self.cash_flow -= delta * fill.price + fill.fee_quote
        if self.size == 0:
            self._open(fill, delta)
            return
        if (self.size > 0) == (delta > 0):  # adding
            new = self.size + delta
            self.average_entry = (abs(self.size) * self.average_entry + abs(delta) * fill.price) / abs(new)
            self.size = new
            self._trade_fees += fill.fee_quote
            self._trade_cost += abs(delta) * fill.price
            return
        closed = min(abs(delta), abs(self.size))
        direction = 1.0 if self.size > 0 else -1.0
        pnl = closed * (fill.price - self.average_entry) * direction
        self.realized_pnl += pnl
        self._trade_pnl += pnl
        # The fee is split between the closing part and a flip's opening part.
        closing_fee = fill.fee_quote * closed / abs(delta)
        self._trade_fees += closing_fee
        remainder = abs(delta) - closed
        self.size += direction * -closed
        if abs(self.size) < 1e-12:
            self.size = 0.0
            self._close(fill, "long" if direction > 0 else "short")
            if remainder > 0:
                share = remainder / abs(delta)
                self._open(
                    BotFill(fill.timestamp_ms, fill.side, fill.price, remainder, fill.fee_quote * share),
                    remainder if delta > 0 else -remainder,
                )

    def _open(self, fill: BotFill, delta: float) -> None:
        self.size = delta
        self.average_entry = fill.price
        self._open_ms = fill.timestamp_ms
        self._trade_pnl = 0.0
        self._trade_fees = fill.fee_quote
        self._trade_cost = abs(delta) * fill.price

    def _close(self, fill: BotFill, side: str) -> None:
        net = self._trade_pnl - self._trade_fees
        self.trades.append(
            {
                "side": side,
                "entry_ms": self._open_ms,
                "exit_ms": fill.timestamp_ms,
                "pnl": net,
                "fees": self._trade_fees,
                "return_pct": net / self._trade_cost if self._trade_cost else 0.0,
                "duration": (fill.timestamp_ms - (self._open_ms or fill.timestamp_ms)) / 1000.0,
                "exit_reason": "signal",
            }
        )
        self.average_entry = None
        self._open_ms = None


def ledger(fills: Iterable[BotFill]) -> Ledger:
    """Replay ``fills`` (in time order) into a ``Ledger``."""
    book = Ledger()
    for fill in fills:
        book.apply(fill)
    return book


def equity_on_candles(
    fills: list[BotFill],
    *,
    capital: float,
    open_ms: np.ndarray,
    close: np.ndarray,
    timeframe_ms: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Equity and signed position size at each candle's close.

    A fill counts from the first candle that closes at or after it (``open + tf >= fill``).
    """
    n = len(open_ms)
    if not fills:
        return np.full(n, float(capital)), np.zeros(n)
    ts = np.array([f.timestamp_ms for f in fills], dtype=np.int64)
    delta = np.array([f.amount if f.side == "buy" else -f.amount for f in fills])
    flow = np.array([-d * f.price - f.fee_quote for d, f in zip(delta, fills, strict=True)])
    # Index of the candle each fill first counts in.
    first = np.searchsorted(np.asarray(open_ms, dtype=np.int64) + timeframe_ms, ts, side="left")
    size_step = np.zeros(n + 1)
    cash_step = np.zeros(n + 1)
    np.add.at(size_step, np.minimum(first, n), delta)
    np.add.at(cash_step, np.minimum(first, n), flow)
    size = np.cumsum(size_step[:n])
    cash = capital + np.cumsum(cash_step[:n])
    return cash + size * np.asarray(close, dtype=np.float64), size
