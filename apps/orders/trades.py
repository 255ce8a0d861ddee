"""Round trips and P&L from fills: the one accounting rule for a bot's performance and the portfolio.

Pure (no Django). One-way accounting (a net position per account and market) with
an average entry price, the same rule as ``apps.orders.services._apply_to_position``:
a fill that adds to the position moves the average entry, one that reduces it
realizes ``closed * (price - entry)``. A *trade* (for win rate, expectancy, ...)
runs from flat to flat; a flip closes one trade and opens the next, the fill's fee
split between them. Fees count in the quote currency (a fee charged in the base
asset is valued at the fill's price by the caller).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TradeFill:
    timestamp_ms: int
    side: str  # "buy" | "sell"
    price: float
    amount: float
    fee_quote: float
    meta: dict | None = None  # copied onto the trade it opens (account, symbol, bot, strategy, ...)


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
    _open_meta: dict | None = None

    @property
    def side(self) -> str:
        return "flat" if self.size == 0 else ("long" if self.size > 0 else "short")

    def unrealized(self, price: float | None) -> float:
        if not self.size or price is None or self.average_entry is None:
            return 0.0
        return self.size * (price - self.average_entry)

    def apply(self, fill: TradeFill) -> None:
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
                    TradeFill(
                        fill.timestamp_ms, fill.side, fill.price, remainder, fill.fee_quote * share, fill.meta
                    ),
                    remainder if delta > 0 else -remainder,
                )

    def _open(self, fill: TradeFill, delta: float) -> None:
        self.size = delta
        self.average_entry = fill.price
        self._open_ms = fill.timestamp_ms
        self._trade_pnl = 0.0
        self._trade_fees = fill.fee_quote
        self._trade_cost = abs(delta) * fill.price
        self._open_meta = fill.meta

    def _close(self, fill: TradeFill, side: str) -> None:
        net = self._trade_pnl - self._trade_fees
        self.trades.append(
            {
                **(self._open_meta or {}),
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


def ledger(fills: Iterable[TradeFill]) -> Ledger:
    """Replay ``fills`` (in time order) into a ``Ledger``."""
    book = Ledger()
    for fill in fills:
        book.apply(fill)
    return book
