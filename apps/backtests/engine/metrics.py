"""Performance metrics: one module for backtests, bots and the portfolio.

Conventions (fixed; the tests pin each one):

* Returns are fractions: 0.12 is 12%. Money amounts are in the quote currency.
* Ratios use **daily returns of the equity curve**: the last equity of each UTC
  day, with the initial equity as the starting point; days without candles are
  skipped. **365** periods a year (crypto trades every day), risk-free rate 0,
  **sample** standard deviation (ddof=1).
* ``sharpe_ratio = mean(r) / std(r) * sqrt(365)``.
* ``sortino_ratio = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(365)``.
* ``volatility = std(r) * sqrt(365)``.
* ``annualized_return = (end / start) ** (365 / days) - 1`` where ``days`` spans the
  first candle's open to the last candle's close; -1.0 if the account is wiped out.
* ``max_drawdown`` is a **negative** fraction (``min(equity / running_peak - 1)``,
  the initial equity counting as a peak); ``max_drawdown_duration`` the longest
  time in seconds from a peak until equity is back at it (or the end).
* ``calmar_ratio = annualized_return / |max_drawdown|``.
* ``var_95`` is the 5% quantile of daily returns (numpy's linear interpolation),
  ``cvar_95`` the mean of the daily returns at or below it; both negative for losses.
* Trade statistics count a trade with pnl > 0 as a win and pnl < 0 as a loss.
  ``profit_factor = gross_profit / |gross_loss|``; ``expectancy`` is the mean pnl
  per trade; ``avg_trade_duration`` is in seconds.
* ``risk_of_ruin``: probability of a 50% drawdown from the per-trade returns
  (Vince's approximation: ``P = (1 + mean/rms) / 2``, ``RoR = ((1 - P) / P) ** (0.5 / rms)``,
  1.0 when the edge is not positive).
* ``beta = cov(r, b) / var(b)`` and ``alpha = (mean(r) - beta * mean(b)) * 365``
  against daily returns ``b`` of the benchmark (the traded asset's price).
* ``exposure_time`` is the fraction of candles ending with an open position;
  ``avg_leverage``/``max_leverage`` the effective leverage ``|size| * close / equity``
  over those candles.

A value that is undefined (no trades, zero deviation, ...) is None, never NaN or
infinity, so results serialize to strict JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .shared import shared

DAY_MS = 86_400_000
PERIODS_PER_YEAR = 365
RUIN_LEVEL = 0.5

METRIC_NAMES = (
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
    "exposure_time",
    "total_fees",
    "total_funding",
    "var_95",
    "cvar_95",
    "best_day",
    "worst_day",
    "trading_days",
    "risk_of_ruin",
    "avg_leverage",
    "max_leverage",
    "liquidations",
    "buy_and_hold_return",
    "alpha",
    "beta",
)


def _num(value: Any) -> float | None:
    """A finite Python float, or None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _annualize(growth: float, days: float) -> float | None:
    """``growth ** (365 / days) - 1``; None when it overflows (a very short, very good run)."""
    try:
        return _num(math.exp(math.log(growth) * PERIODS_PER_YEAR / days) - 1.0)
    except OverflowError:
        return None


def daily_returns(timestamps: np.ndarray, values: np.ndarray, start_value: float) -> np.ndarray:
    """Returns between the last values of consecutive UTC days, starting from ``start_value``."""
    if len(values) == 0:
        return np.empty(0)
    last = shared("metrics.day_ends", (timestamps,), lambda: _day_ends(timestamps))
    closes = np.concatenate(([start_value], values[last], values[-1:]))
    prev = closes[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.where(prev > 0, closes[1:] / np.where(prev > 0, prev, 1.0) - 1.0, 0.0)
    return returns


def _day_ends(timestamps: np.ndarray) -> np.ndarray:
    """Index of the last candle of each UTC day but the final one."""
    day = timestamps // DAY_MS
    return np.flatnonzero(np.diff(day)) if len(day) > 1 else np.empty(0, dtype=np.int64)


def drawdown_curve(equity: np.ndarray, start_value: float) -> np.ndarray:
    """``equity / running_peak - 1`` (<= 0), the starting value counting as the first peak."""
    if len(equity) == 0:
        return np.empty(0)
    peak = np.maximum.accumulate(equity)
    np.maximum(peak, start_value, out=peak)
    if start_value > 0:
        # In place: the same two operations per value as ``equity / peak - 1.0``, one array less.
        np.divide(equity, peak, out=peak)
        peak -= 1.0
        return peak
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.minimum(np.where(peak > 0, equity / np.where(peak > 0, peak, 1.0) - 1.0, 0.0), 0.0)


def _max_drawdown_duration(timestamps: np.ndarray, drawdown: np.ndarray) -> float:
    """Longest peak-to-recovery time in seconds (an unrecovered drawdown runs to the last candle)."""
    under = drawdown < 0
    if not under.any():
        return 0.0
    padded = np.concatenate(([False], under, [False]))
    edges = np.flatnonzero(np.diff(padded.view(np.int8)))
    starts, ends = edges[::2], edges[1::2]  # [start, end) runs of underwater candles
    # The peak is the candle before the run (or the first candle); recovery is the candle after it.
    peak_ts = timestamps[np.maximum(starts - 1, 0)]
    end_ts = timestamps[np.minimum(ends, len(timestamps) - 1)]
    return float(np.max(end_ts - peak_ts)) / 1000.0


def _runs(mask: np.ndarray) -> int:
    """Length of the longest run of True."""
    if not mask.any():
        return 0
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return int(np.max(edges[1::2] - edges[::2]))


def _bar_ms(timestamps: np.ndarray) -> int:
    if len(timestamps) < 2:
        return DAY_MS
    diffs = np.diff(timestamps[: min(len(timestamps), 10_001)])
    values, counts = np.unique(diffs[diffs > 0], return_counts=True)
    return int(values[np.argmax(counts)]) if len(values) else DAY_MS


def _trade_columns(trades: Any) -> dict[str, np.ndarray]:
    """Columns pnl, fees, funding, return_pct, duration, side, exit_reason from any trade form."""
    if trades is None:
        return {}
    if isinstance(trades, Mapping):
        return {k: np.asarray(v) for k, v in trades.items()}
    if hasattr(trades, "columns") and isinstance(trades.columns, Mapping):
        return {k: np.asarray(v) for k, v in trades.columns.items()}
    rows: Sequence[Any] = list(trades)
    if not rows:
        return {"pnl": np.empty(0)}
    get = (lambda r, k: r[k]) if isinstance(rows[0], Mapping) else getattr
    out: dict[str, np.ndarray] = {}
    for key in (
        "pnl",
        "fees",
        "funding",
        "return_pct",
        "duration",
        "side",
        "exit_reason",
    ):
        try:
            out[key] = np.asarray([get(r, key) for r in rows])
        except (KeyError, AttributeError):
            continue
    return out


def compute_metrics(
    equity_timestamps: np.ndarray,
    equity: np.ndarray,
    trades: Any = None,
    *,
    initial_equity: float | None = None,
    benchmark_close: np.ndarray | None = None,
    benchmark_start: float | None = None,
    position_size: np.ndarray | None = None,
    close: np.ndarray | None = None,
    bar_ms: int | None = None,
    drawdown: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """Every metric in ``METRIC_NAMES`` from an equity curve and (optionally) trades.

    ``equity_timestamps`` are candle open times (ms) and ``equity`` the equity at
    each candle's close. ``trades`` may be a columnar mapping (``pnl``, ``fees``,
    ``return_pct``, ``duration``, ``side``, ``exit_reason``), a list of dicts or of
    objects with those attributes, or None for an equity curve alone (trade metrics
    are then None). ``benchmark_close`` (same timestamps) enables buy-and-hold,
    alpha and beta; ``position_size`` plus ``close`` enable exposure and leverage;
    ``drawdown`` may pass an already computed ``drawdown_curve``.
    """
    ts = np.asarray(equity_timestamps, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    m: dict[str, float | int | None] = dict.fromkeys(METRIC_NAMES)
    if len(eq) == 0:
        return m
    start = float(initial_equity) if initial_equity is not None else float(eq[0])
    end = float(eq[-1])
    bar = bar_ms or _bar_ms(ts)
    m["start_equity"] = start
    m["end_equity"] = end
    m["net_profit"] = end - start
    m["total_return"] = _num(end / start - 1.0) if start > 0 else None
    days = (int(ts[-1]) + bar - int(ts[0])) / DAY_MS
    if start > 0 and days > 0:
        m["annualized_return"] = -1.0 if end <= 0 else _annualize(end / start, days)

    r = daily_returns(ts, eq, start)
    m["trading_days"] = len(r)
    ann = math.sqrt(PERIODS_PER_YEAR)
    if len(r) >= 1:
        m["best_day"] = _num(r.max())
        m["worst_day"] = _num(r.min())
        var = float(np.quantile(r, 0.05))
        m["var_95"] = _num(var)
        m["cvar_95"] = _num(r[r <= var].mean())
        downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
        if downside > 0:
            m["sortino_ratio"] = _num(r.mean() / downside * ann)
    if len(r) >= 2:
        std = float(r.std(ddof=1))
        m["volatility"] = _num(std * ann)
        if std > 0:
            m["sharpe_ratio"] = _num(r.mean() / std * ann)

    dd = drawdown if drawdown is not None else drawdown_curve(eq, start)
    mdd = float(dd.min())
    m["max_drawdown"] = mdd
    m["max_drawdown_duration"] = _max_drawdown_duration(ts, dd)
    if mdd < 0 and m["annualized_return"] is not None:
        m["calmar_ratio"] = _num(m["annualized_return"] / abs(mdd))

    if benchmark_close is not None and len(benchmark_close) == len(eq):
        bench = np.asarray(benchmark_close, dtype=np.float64)
        b0 = float(benchmark_start) if benchmark_start is not None else float(bench[0])
        m["buy_and_hold_return"] = _num(bench[-1] / b0 - 1.0)
        b = shared("metrics.benchmark_returns", (ts, bench, b0), lambda: daily_returns(ts, bench, b0))
        if len(b) >= 2:
            var_b = float(b.var(ddof=1))
            if var_b > 0:
                beta = float(np.cov(r, b, ddof=1)[0, 1]) / var_b
                m["beta"] = _num(beta)
                m["alpha"] = _num((r.mean() - beta * b.mean()) * PERIODS_PER_YEAR)

    if position_size is not None and close is not None and len(position_size) == len(eq):
        size = np.abs(np.asarray(position_size, dtype=np.float64))
        exposed = int(np.count_nonzero(size))
        m["exposure_time"] = exposed / len(eq)
        if exposed:
            # Effective leverage per candle; flat candles add 0 and are left out of the mean.
            lev = np.multiply(size, np.asarray(close, dtype=np.float64), out=size)
            if eq.min() > 0:  # the usual case: the same values as the masked form below
                lev /= eq
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    lev = np.where(eq > 0, lev / np.where(eq > 0, eq, 1.0), 0.0)
            m["avg_leverage"] = _num(lev.sum() / exposed)
            m["max_leverage"] = _num(lev.max())
        else:
            m["avg_leverage"] = 0.0
            m["max_leverage"] = 0.0

    cols = _trade_columns(trades)
    if cols:
        _trade_metrics(m, cols)
    return m


def _trade_metrics(m: dict[str, Any], cols: dict[str, np.ndarray]) -> None:
    pnl = np.asarray(cols.get("pnl", np.empty(0)), dtype=np.float64)
    n = len(pnl)
    m["total_trades"] = n
    side = cols.get("side")
    reason = cols.get("exit_reason")
    m["long_trades"] = int(np.sum(side == "long")) if side is not None and n else 0
    m["short_trades"] = int(np.sum(side == "short")) if side is not None and n else 0
    m["liquidations"] = int(np.sum(reason == "liquidation")) if reason is not None and n else 0
    m["total_fees"] = float(np.sum(cols["fees"])) if "fees" in cols and n else 0.0
    m["total_funding"] = float(np.sum(cols["funding"])) if "funding" in cols and n else 0.0
    wins, losses = pnl > 0, pnl < 0
    m["winning_trades"] = int(wins.sum())
    m["losing_trades"] = int(losses.sum())
    m["gross_profit"] = float(pnl[wins].sum())
    m["gross_loss"] = float(pnl[losses].sum())
    m["max_consecutive_wins"] = _runs(wins)
    m["max_consecutive_losses"] = _runs(losses)
    if n == 0:
        return
    m["win_rate"] = float(wins.sum()) / n
    m["expectancy"] = _num(pnl.mean())
    if losses.any():
        m["profit_factor"] = _num(m["gross_profit"] / -m["gross_loss"])
        m["avg_loss"] = _num(pnl[losses].mean())
        m["largest_loss"] = _num(pnl[losses].min())
    if wins.any():
        m["avg_win"] = _num(pnl[wins].mean())
        m["largest_win"] = _num(pnl[wins].max())
    if "duration" in cols:
        m["avg_trade_duration"] = _num(np.mean(np.asarray(cols["duration"], dtype=np.float64)))
    if "return_pct" in cols:
        rets = np.asarray(cols["return_pct"], dtype=np.float64)
        m["avg_trade_return"] = _num(rets.mean())
        m["risk_of_ruin"] = risk_of_ruin(rets)


def risk_of_ruin(trade_returns: np.ndarray, ruin_level: float = RUIN_LEVEL) -> float | None:
    """Probability of losing ``ruin_level`` of the account (see module docstring)."""
    rets = np.asarray(trade_returns, dtype=np.float64)
    if len(rets) == 0:
        return None
    mean = float(rets.mean())
    rms = math.sqrt(float(np.mean(rets**2)))
    if rms == 0:
        return 0.0
    if mean <= 0:
        return 1.0
    p = 0.5 * (1.0 + mean / rms)
    if p >= 1.0:
        return 0.0
    return _num(((1.0 - p) / p) ** (ruin_level / rms))
