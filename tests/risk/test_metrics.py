"""VaR/CVaR against a hand computation, and the risk score's documented formula."""

from __future__ import annotations

import numpy as np
import pytest

from apps.risk import metrics


def test_var_and_cvar_of_a_known_series_match_the_hand_computation():
    # 100 daily returns: -10%, -9%, ..., -1% and 90 days of +1%.
    returns = np.array([-0.10, -0.09, -0.08, -0.07, -0.06, -0.05, -0.04, -0.03, -0.02, -0.01] + [0.01] * 90)
    result = metrics.portfolio_var(returns.reshape(-1, 1), np.array([1000.0]))
    # 95%: k = ceil(100 * 0.05) = 5 worst losses 100, 90, 80, 70, 60 -> VaR 60, CVaR 80.
    assert result.var_95 == pytest.approx(60.0)
    assert result.cvar_95 == pytest.approx(80.0)
    # 99%: k = 1 -> the worst day, 100, for both.
    assert result.var_99 == pytest.approx(100.0)
    assert result.cvar_99 == pytest.approx(100.0)
    assert result.days == 100


def test_var_of_two_assets_uses_the_portfolio_pnl_so_a_hedge_offsets():
    rng = np.random.default_rng(1)
    r = rng.normal(0, 0.02, size=(60, 1))
    both = np.hstack([r, r])
    hedged = metrics.portfolio_var(both, np.array([500.0, -500.0]))
    assert hedged.var_95 == pytest.approx(0, abs=1e-9) and hedged.cvar_99 == pytest.approx(0, abs=1e-9)
    long_only = metrics.portfolio_var(both, np.array([500.0, 500.0]))
    single = metrics.portfolio_var(r, np.array([1000.0]))
    assert long_only.var_95 == pytest.approx(single.var_95)


def test_var_needs_enough_days():
    assert metrics.portfolio_var(np.zeros((metrics.MIN_VAR_DAYS - 1, 1)), np.array([1.0])) is None


def test_simple_returns():
    assert metrics.simple_returns(np.array([100.0, 110.0, 99.0])) == pytest.approx([0.1, -0.1])


def test_score_is_1_when_idle_and_100_when_every_part_is_full():
    idle, parts = metrics.risk_score(
        equity=1000, leverage=0, var_99=None, drawdown=0, daily_pnl=0, largest_exposure=0, gross_exposure=0
    )
    assert idle == 1 and set(parts.values()) == {0.0}
    full, parts = metrics.risk_score(
        equity=1000, leverage=5, var_99=100, drawdown=0.2, daily_pnl=-50, largest_exposure=5000,
        gross_exposure=5000,
    )  # fmt: skip
    assert full == 100 and set(parts.values()) == {1.0}


def test_score_follows_the_weights():
    # Only leverage at half its full level: 1 + round(99 * 25 * 0.5 / 100) = 1 + round(12.375) = 13.
    score, _ = metrics.risk_score(
        equity=1000, leverage=2.5, var_99=0, drawdown=0, daily_pnl=0, largest_exposure=0, gross_exposure=0
    )
    assert score == 13
