"""Portfolio analytics: pure functions over numpy arrays (no Django), like the engine they feed.

Inputs are plain arrays: snapshot times in int64 milliseconds (UTC) with the
equity at each, cash flows (deposits positive, withdrawals negative) with their
times, and fills as columns. The selectors in ``apps.portfolio.selectors`` read
the database into these arrays; everything here is tested against independent
pandas computations (``tests/portfolio/test_analytics.py``).

Conventions:

* A day is a UTC day; its *close* is the last equity recorded in it.
* P&L excludes cash flows: ``pnl(day) = close(day) - close(previous day) - flows(day)``;
  the first day starts from 0 (the account's opening balance is a cash flow).
* Ratios (Sharpe, drawdown, ...) are computed by the engine's ``compute_metrics``
  on a **time-weighted index**: each step's return is
  ``(equity - flows since the previous point) / previous equity - 1``, so a
  deposit is not a gain and a withdrawal not a loss.
* Trades are round trips per account and market, with the accounting rule of the
  orders app and ``apps.bots.performance`` (one net position, average entry; a trade
  runs flat to flat, a flip closes one and opens the next; P&L net of fees in the quote).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from apps.backtests.engine.metrics import DAY_MS, compute_metrics, drawdown_curve
from apps.orders.trades import Ledger, TradeFill

# The shortest record whose return is annualized (a year; see performance_metrics).
MIN_ANNUALIZED_DAYS = 365
PERFORMANCE_METRICS = (
    "start_equity",
    "end_equity",
    "net_profit",
    "total_return",
    "annualized_return",
    "volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown",
    "max_drawdown_duration",
    "var_95",
    "cvar_95",
    "best_day",
    "worst_day",
    "trading_days",
    "beta",
    "alpha",
)
TRADING_METRICS = (
    "total_trades",
    "long_trades",
    "short_trades",
    "winning_trades",
    "losing_trades",
    "win_rate",
    "gross_profit",
    "gross_loss",
    "profit_factor",
    "expectancy",
    "avg_trade_return",
    "avg_win",
    "avg_loss",
    "largest_win",
    "largest_loss",
    "max_consecutive_wins",
    "max_consecutive_losses",
    "avg_trade_duration",
    "total_fees",
)
EMPTY_I8 = np.empty(0, dtype=np.int64)
EMPTY_F8 = np.empty(0, dtype=np.float64)


# ------------------------------------------------------------------ days and flows
def day_of(ts_ms: np.ndarray) -> np.ndarray:
    """The UTC day start (ms) of each timestamp."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    return ts - ts % DAY_MS


def daily_close(ts_ms: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(day starts, last value of each day)`` for time-ordered points."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    if len(ts) == 0:
        return EMPTY_I8, EMPTY_F8
    days = day_of(ts)
    last = np.flatnonzero(np.append(np.diff(days) != 0, True))
    return days[last], np.asarray(values, dtype=np.float64)[last]


def sum_by_day(ts_ms: np.ndarray, amounts: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The sum of ``amounts`` falling on each of ``days`` (sorted day starts)."""
    out = np.zeros(len(days), dtype=np.float64)
    if len(ts_ms) == 0 or len(days) == 0:
        return out
    idx = np.searchsorted(days, day_of(ts_ms))
    hit = (idx < len(days)) & (days[np.minimum(idx, len(days) - 1)] == day_of(ts_ms))
    np.add.at(out, idx[hit], np.asarray(amounts, dtype=np.float64)[hit])
    return out


def daily_pnl(
    ts_ms: np.ndarray, equity: np.ndarray, flow_ts: np.ndarray, flow_amount: np.ndarray
) -> dict[str, np.ndarray]:
    """Per UTC day: ``day`` (ms), ``close``, ``flows`` and ``pnl`` (change in equity minus flows)."""
    days, close = daily_close(ts_ms, equity)
    if len(days) == 0:
        return {"day": days, "close": close, "flows": EMPTY_F8, "pnl": EMPTY_F8}
    # Flows before the first snapshot day belong to the first day (the opening balance).
    flow_ts = np.asarray(flow_ts, dtype=np.int64)
    flow_ts = np.maximum(flow_ts, days[0]) if len(flow_ts) else flow_ts
    flows = sum_by_day(flow_ts, flow_amount, days)
    previous = np.concatenate(([0.0], close[:-1]))
    return {"day": days, "close": close, "flows": flows, "pnl": close - previous - flows}


def monthly_pnl(days_ms: np.ndarray, pnl: np.ndarray) -> dict[str, np.ndarray]:
    """Sum daily P&L by calendar month: ``month`` ("YYYY-MM") and ``pnl``."""
    if len(days_ms) == 0:
        return {"month": np.empty(0, dtype="<U7"), "pnl": EMPTY_F8}
    months = np.asarray(days_ms, dtype="datetime64[ms]").astype("datetime64[M]")
    unique, inverse = np.unique(months, return_inverse=True)
    sums = np.zeros(len(unique))
    np.add.at(sums, inverse, np.asarray(pnl, dtype=np.float64))
    return {"month": unique.astype(str), "pnl": sums}


def performance_index(
    ts_ms: np.ndarray, equity: np.ndarray, flow_ts: np.ndarray, flow_amount: np.ndarray
) -> np.ndarray:
    """The time-weighted equity index (starts at the first equity; flows neither gain nor lose)."""
    eq = np.asarray(equity, dtype=np.float64)
    if len(eq) == 0:
        return EMPTY_F8
    ts = np.asarray(ts_ms, dtype=np.int64)
    flows = np.zeros(len(eq))
    if len(flow_ts):
        # A flow belongs to the first point at or after it; those at or before the first point are the start.
        idx = np.searchsorted(ts, np.asarray(flow_ts, dtype=np.int64), side="left")
        keep = (idx > 0) & (idx < len(eq))
        np.add.at(flows, idx[keep], np.asarray(flow_amount, dtype=np.float64)[keep])
    prev = eq[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.where(prev > 0, (eq[1:] - flows[1:]) / np.where(prev > 0, prev, 1.0), 1.0)
    return eq[0] * np.concatenate(([1.0], np.cumprod(growth)))


def drawdown(index: np.ndarray) -> np.ndarray:
    """Drawdown (<= 0) of the time-weighted index, with the engine's ``drawdown_curve``."""
    if len(index) == 0:
        return EMPTY_F8
    return drawdown_curve(np.asarray(index, dtype=np.float64).copy(), float(index[0]))


def align_benchmark(ts_ms: np.ndarray, bench_ts: np.ndarray, bench_close: np.ndarray) -> np.ndarray | None:
    """The benchmark's last close at or before each point; None when it does not cover the range."""
    if len(bench_ts) == 0 or len(ts_ms) == 0:
        return None
    idx = (
        np.searchsorted(np.asarray(bench_ts, dtype=np.int64), np.asarray(ts_ms, dtype=np.int64), "right") - 1
    )
    if idx[0] < 0:
        return None
    return np.asarray(bench_close, dtype=np.float64)[idx]


def performance_metrics(
    ts_ms: np.ndarray,
    equity: np.ndarray,
    flow_ts: np.ndarray,
    flow_amount: np.ndarray,
    *,
    bench_ts: np.ndarray = EMPTY_I8,
    bench_close: np.ndarray = EMPTY_F8,
) -> dict[str, Any]:
    """Return, risk and beta (to the benchmark, e.g. BTC/USDT daily closes) through ``compute_metrics``."""
    index = performance_index(ts_ms, equity, flow_ts, flow_amount)
    if len(index) == 0:
        return dict.fromkeys(PERFORMANCE_METRICS)
    bench = align_benchmark(ts_ms, bench_ts, bench_close)
    m = compute_metrics(
        np.asarray(ts_ms, dtype=np.int64),
        index,
        initial_equity=float(index[0]),
        benchmark_close=bench,
        bar_ms=_bar_ms(ts_ms),
    )
    out = {name: m[name] for name in PERFORMANCE_METRICS}
    if (int(ts_ms[-1]) - int(ts_ms[0])) / DAY_MS < MIN_ANNUALIZED_DAYS:
        # A real account's record is reported as performance standards require (GIPS: "Returns
        # for periods of less than one year must not be annualized", gipsstandards.org Q&A):
        # ten minutes at -3.9% read as -100% a year. Calmar divides that figure. Backtests keep
        # the engine's annualized figures (a simulated run, compared like for like).
        out["annualized_return"] = out["calmar_ratio"] = None
    return out


def _bar_ms(ts_ms: np.ndarray) -> int:
    # Tiered snapshots are unevenly spaced; annualizing spans first to last point.
    return int(np.median(np.diff(ts_ms))) if len(ts_ms) > 1 else DAY_MS


# ------------------------------------------------------------------ trades
def round_trips(fills: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Closed trades from time-ordered fills, by the one accounting rule (``apps.orders.trades``).

    Each fill: ``ts`` (ms), ``account``, ``symbol``, ``side`` (buy/sell), ``price``,
    ``amount``, ``fee`` (in the quote), optional ``bot`` and ``strategy``. Each
    trade: ``account``, ``symbol``, ``side``, ``entry_ms``, ``exit_ms``, ``pnl``
    (net of fees), ``fees``, ``return_pct`` (net P&L / entry cost), ``duration`` (s),
    ``bot``, ``strategy`` (those of the fill that opened it).
    """
    books: dict[tuple, Ledger] = defaultdict(Ledger)
    trades: list[dict[str, Any]] = []
    for fill in fills:
        book = books[(fill["account"], fill["symbol"])]
        done = len(book.trades)
        book.apply(
            TradeFill(
                int(fill["ts"]),
                fill["side"],
                float(fill["price"]),
                float(fill["amount"]),
                float(fill["fee"]),
                meta={
                    "account": fill["account"],
                    "symbol": fill["symbol"],
                    "bot": fill.get("bot"),
                    "strategy": fill.get("strategy") or "",
                },
            )
        )
        trades.extend(book.trades[done:])
    return trades


def trade_columns(trades: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Trades as the columns ``compute_metrics`` reads."""
    return {
        "pnl": np.fromiter((t["pnl"] for t in trades), dtype=np.float64, count=len(trades)),
        "fees": np.fromiter((t["fees"] for t in trades), dtype=np.float64, count=len(trades)),
        "return_pct": np.fromiter((t["return_pct"] for t in trades), dtype=np.float64, count=len(trades)),
        "duration": np.fromiter((t["duration"] for t in trades), dtype=np.float64, count=len(trades)),
        "side": np.asarray([t["side"] for t in trades], dtype=object),
    }


def trading_metrics(trades: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Win rate, profit factor, average trade, expectancy, ... from ``compute_metrics``."""
    # compute_metrics wants an equity curve; the trade statistics do not depend on it.
    m = compute_metrics(np.zeros(1, dtype=np.int64), np.zeros(1), trade_columns(trades))
    return {name: m[name] for name in TRADING_METRICS}


def trade_histogram(trades: list[Mapping[str, Any]], bins: int = 20) -> dict[str, list[float]]:
    """Histogram of trade returns (fractions): ``edges`` (bins + 1) and ``counts``."""
    if not trades:
        return {"edges": [], "counts": []}
    returns = np.fromiter((t["return_pct"] for t in trades), dtype=np.float64, count=len(trades))
    counts, edges = np.histogram(returns, bins=bins)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def compare_trades(trades: list[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    """Trading metrics and net P&L per value of ``key`` ("bot" or "strategy"), best P&L first."""
    groups: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for trade in trades:
        groups[trade[key]].append(trade)
    rows = [
        {"key": name, "net_pnl": float(sum(t["pnl"] for t in group)), **trading_metrics(group)}
        for name, group in groups.items()
    ]
    return sorted(rows, key=lambda r: r["net_pnl"], reverse=True)


def monthly_by_strategy(trades: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per month and strategy: net P&L, trades and the best symbol (highest P&L)."""
    cells: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for t in trades:
        month = str(np.datetime64(int(t["exit_ms"]), "ms").astype("datetime64[M]"))
        cell = (month, t["strategy"])
        cells[cell][t["symbol"]] += t["pnl"]
        counts[cell] += 1
    rows = []
    for (month, strategy), by_symbol in sorted(cells.items()):
        best = max(by_symbol, key=by_symbol.get)
        rows.append(
            {
                "month": month,
                "strategy": strategy,
                "net_pnl": float(sum(by_symbol.values())),
                "trades": counts[(month, strategy)],
                "best_symbol": best,
                "best_symbol_pnl": float(by_symbol[best]),
            }
        )
    return rows


# ------------------------------------------------------------------ exposure
def exposure(assets: Iterable[Mapping[str, Any]], equity: float) -> list[dict[str, Any]]:
    """Value per asset across accounts and its share of equity, largest first.

    ``assets``: rows with ``asset`` and ``value`` (in the display currency).
    """
    totals: dict[str, float] = defaultdict(float)
    for row in assets:
        totals[row["asset"]] += float(row["value"])
    out = [
        {"asset": asset, "value": value, "share": (value / equity) if equity else None}
        for asset, value in totals.items()
    ]
    return sorted(out, key=lambda r: abs(r["value"]), reverse=True)
