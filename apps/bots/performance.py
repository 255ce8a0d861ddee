"""A bot's performance from its fills: round trips, position, P&L and the equity curve.

Pure (numpy only, no Django) like the engine whose metrics it feeds: the
selector ``apps.bots.selectors.bot_performance`` reads the fills and candles and
hands them here, then passes the result to ``apps.backtests.engine.compute_metrics``
so a bot is measured exactly like a backtest.

The accounting (round trips, average entry, realized P&L) is the one in
``apps.orders.trades``, which the portfolio uses too.
"""

from __future__ import annotations

import numpy as np

from apps.orders.trades import Ledger, ledger
from apps.orders.trades import TradeFill as BotFill

__all__ = ["BotFill", "Ledger", "equity_on_candles", "ledger"]


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
