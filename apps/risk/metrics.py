"""Portfolio risk figures as pure functions: historical VaR/CVaR and the risk score (``docs/risk.md``).

numpy only, no Django: the monitor feeds them daily closes from the candle
store and the current exposure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: At least this many daily returns before a VaR is reported (fewer say too little).
MIN_VAR_DAYS = 20
#: At most this many (about a year of trading days).
MAX_VAR_DAYS = 365


@dataclass(frozen=True)
class VarResult:
    var_95: float
    cvar_95: float
    var_99: float
    cvar_99: float
    days: int


def tail(losses: np.ndarray, confidence: float) -> tuple[float, float]:
    """Historical VaR and CVaR of a loss sample (losses positive).

    With ``n`` losses and ``k = ceil(n * (1 - confidence))``, VaR is the k-th
    largest loss and CVaR the mean of the k largest: for 100 days at 95% the
    5th worst day and the average of the 5 worst days. Never below zero (a
    sample without losses has no loss at risk).
    """
    n = len(losses)
    if n == 0:
        return 0.0, 0.0
    k = max(1, math.ceil(round(n * (1 - confidence), 9)))
    worst = np.sort(losses)[::-1][:k]
    return max(0.0, float(worst[-1])), max(0.0, float(worst.mean()))


def portfolio_var(returns: np.ndarray, exposures: np.ndarray) -> VarResult | None:
    """One-day historical VaR/CVaR of holding ``exposures`` (value per asset, signed) through each past day.

    ``returns`` is days x assets of simple daily returns on common days. The
    portfolio's P&L on day t is ``sum_i exposure_i * return_{t,i}``; losses are
    its negatives. ``None`` with fewer than ``MIN_VAR_DAYS`` days.
    """
    if returns.ndim != 2 or returns.shape[0] < MIN_VAR_DAYS or returns.shape[1] != len(exposures):
        return None
    returns = returns[-MAX_VAR_DAYS:]
    losses = -(returns @ exposures)
    var_95, cvar_95 = tail(losses, 0.95)
    var_99, cvar_99 = tail(losses, 0.99)
    return VarResult(var_95, cvar_95, var_99, cvar_99, int(returns.shape[0]))


def simple_returns(closes: np.ndarray) -> np.ndarray:
    closes = np.asarray(closes, dtype=float)
    return closes[1:] / closes[:-1] - 1.0


# The score: each part is 0 (calm) .. 1 (at or past its "full" level), weighted.
SCORE_WEIGHTS = {"leverage": 25, "var": 25, "drawdown": 20, "daily_loss": 15, "concentration": 15}
FULL_LEVERAGE = 5.0  # 5x gross leverage scores the full leverage part
FULL_VAR = 0.10  # a one-day 99% VaR of 10% of equity
FULL_DRAWDOWN = 0.20  # 20% below peak
FULL_DAILY_LOSS = 0.05  # 5% of equity lost today


def risk_score(
    *,
    equity: float | None,
    leverage: float,
    var_99: float | None,
    drawdown: float,
    daily_pnl: float,
    largest_exposure: float,
    gross_exposure: float,
) -> tuple[int, dict[str, float]]:
    """Risk score 1 (idle) .. 100 (every part at its full level) and the parts (each 0..1).

    ``score = 1 + round(99 * sum(weight_i * part_i) / 100)`` with the weights in
    ``SCORE_WEIGHTS``; ``docs/risk.md`` has the table. Without positive equity
    the exposure-based parts are full: there is nothing to absorb a loss.
    """

    def clip(x: float) -> float:
        return 0.0 if not math.isfinite(x) else min(1.0, max(0.0, x))

    has_equity = equity is not None and equity > 0
    eq = equity if has_equity else 1.0
    exposed = gross_exposure > 0
    parts = {
        "leverage": clip(leverage / FULL_LEVERAGE) if has_equity else float(exposed),
        "var": clip((var_99 or 0.0) / eq / FULL_VAR) if has_equity else float(exposed),
        "drawdown": clip(drawdown / FULL_DRAWDOWN),
        "daily_loss": clip(max(0.0, -daily_pnl) / eq / FULL_DAILY_LOSS) if has_equity else 0.0,
        # Everything in one asset is full concentration, scaled by how much of equity is at stake.
        "concentration": clip(largest_exposure / gross_exposure * min(1.0, gross_exposure / eq))
        if exposed
        else 0.0,
    }
    weighted = sum(SCORE_WEIGHTS[name] * value for name, value in parts.items())
    return 1 + round(99 * weighted / 100), {name: round(value, 4) for name, value in parts.items()}
