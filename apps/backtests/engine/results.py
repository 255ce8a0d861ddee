"""``BacktestResult`` and ``Trade``: what a run returns, and its deterministic JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TRADE_FIELDS = (
    "entry_time",
    "exit_time",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "fees",
    "funding",
    "pnl",
    "return_pct",
    "mae",
    "mfe",
    "duration",
    "exit_reason",
    "leverage",
)
_INT_FIELDS = frozenset(("entry_time", "exit_time"))
_STR_FIELDS = frozenset(("side", "exit_reason"))


@dataclass(frozen=True)
class Trade:
    """One round trip from flat to flat (or to a reversal).

    Times are ms UTC; ``size`` the largest absolute size held; prices are average
    fill prices; ``pnl`` is net of fees and funding; ``return_pct`` is pnl over the
    capital committed (entry notional / leverage); ``mae``/``mfe`` are the worst and
    best price excursions as fractions of the entry price (mae <= 0 <= mfe), from
    the entry, the full candles held before the exit candle, the exit candle's open
    and the exit price; ``duration`` is in seconds.
    """

    entry_time: int
    exit_time: int
    side: str
    size: float
    entry_price: float
    exit_price: float
    fees: float
    funding: float
    pnl: float
    return_pct: float
    mae: float
    mfe: float
    duration: float
    exit_reason: str
    leverage: float


def _clean(value: Any) -> Any:
    """Python scalars with NaN/inf as None, so ``json.dumps`` output is strict and stable."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def empty_trade_columns() -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for name in TRADE_FIELDS:
        if name in _INT_FIELDS:
            cols[name] = np.empty(0, dtype=np.int64)
        elif name in _STR_FIELDS:
            cols[name] = np.empty(0, dtype=object)
        else:
            cols[name] = np.empty(0, dtype=np.float64)
    return cols


@dataclass
class BacktestResult:
    """Everything a run produced. Trades are stored column-wise (``trade_columns``)."""

    metrics: dict[str, float | int | None]
    trade_columns: dict[str, np.ndarray]
    equity_timestamps: np.ndarray
    equity: np.ndarray
    drawdown: np.ndarray
    position_size: np.ndarray
    position_columns: dict[str, np.ndarray]
    config: dict[str, Any] = field(default_factory=dict)
    strategy: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def positions(self) -> list[dict[str, Any]]:
        """Position timeline: one row per change (timestamp, size, side, avg_price, leverage)."""
        cols = self.position_columns
        rows = []
        for t, size, price, lev in zip(
            cols["timestamp"].tolist(),
            cols["size"].tolist(),
            cols["avg_price"].tolist(),
            cols["leverage"].tolist(),
            strict=True,
        ):
            side = "long" if size > 0 else ("short" if size < 0 else "flat")
            rows.append(
                {
                    "timestamp": t,
                    "size": size,
                    "side": side,
                    "avg_price": price if size else None,
                    "leverage": lev,
                }
            )
        return rows

    @property
    def trades(self) -> list[Trade]:
        """The trades as ``Trade`` objects (built on demand from the columns)."""
        return [Trade(**row) for row in self.trades_as_records()]

    def trades_as_records(self) -> list[dict[str, Any]]:
        """The trades as plain dicts of Python scalars (JSON-ready)."""
        cols = self.trade_columns
        lists = {name: cols[name].tolist() for name in TRADE_FIELDS}
        count = len(lists["pnl"])
        return [{name: _clean(lists[name][k]) for name in TRADE_FIELDS} for k in range(count)]

    def equity_pairs(self) -> list[list[Any]]:
        """``[[timestamp_ms, equity], ...]``."""
        return [list(p) for p in zip(self.equity_timestamps.tolist(), self.equity.tolist(), strict=True)]

    def to_dict(self, *, include_curves: bool = True) -> dict[str, Any]:
        """Deterministic JSON-able dict: the same inputs give byte-identical ``json.dumps(..., sort_keys=True)``."""
        out: dict[str, Any] = {
            "metrics": {k: _clean(v) for k, v in self.metrics.items()},
            "trades": self.trades_as_records(),
            "positions": self.positions,
            "config": self.config,
            "strategy": self.strategy,
            "info": self.info,
        }
        if include_curves:
            ts = self.equity_timestamps.tolist()
            out["equity"] = [[t, _clean(e)] for t, e in zip(ts, self.equity.tolist(), strict=True)]
            out["drawdown"] = [[t, _clean(d)] for t, d in zip(ts, self.drawdown.tolist(), strict=True)]
        return out
