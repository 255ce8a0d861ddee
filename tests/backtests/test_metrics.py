"""Each metric against a hand computation on a small series (independent of numpy where it matters)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from apps.backtests.engine import METRIC_NAMES, compute_metrics
from apps.backtests.engine.metrics import daily_returns, drawdown_curve, risk_of_ruin

DAY = 86_400_000
T0 = 1_700_000_000_000 // DAY * DAY
TS = T0 + DAY * np.arange(4)
EQ = np.array([100.0, 110.0, 99.0, 121.0])
R = [0.0, 0.1, -0.1, 121 / 99 - 1]  # daily returns, the first against the initial 100
TRADES = {
    "pnl": np.array([10.0, -5.0, 20.0, -5.0, -5.0, 0.0]),
    "fees": np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    "funding": np.zeros(6),
    "return_pct": np.array([0.1, -0.05, 0.2, -0.05, -0.05, 0.0]),
    "duration": np.array([60.0, 120.0, 180.0, 60.0, 60.0, 120.0]),
    "side": np.array(["long", "long", "short", "long", "short", "long"], dtype=object),
    "exit_reason": np.array(
        ["signal", "stop_loss", "take_profit", "liquidation", "signal", "signal"],
        dtype=object,
    ),
}


@pytest.fixture(scope="module")
def m():
    return compute_metrics(TS, EQ, TRADES, initial_equity=100.0)


def test_at_least_25_metrics_and_the_issue_names():
    required = [
        "total_return",
        "annualized_return",
        "volatility",
        "sharpe_ratio",
        "sortino_ratio",
        "calmar_ratio",
        "max_drawdown",
        "max_drawdown_duration",
        "total_trades",
        "win_rate",
        "profit_factor",
        "expectancy",
        "avg_win",
        "avg_loss",
        "largest_win",
        "largest_loss",
        "max_consecutive_wins",
        "max_consecutive_losses",
        "avg_trade_duration",
        "exposure_time",
        "total_fees",
        "var_95",
        "cvar_95",
        "risk_of_ruin",
        "avg_leverage",
        "max_leverage",
        "liquidations",
        "buy_and_hold_return",
        "alpha",
        "beta",
    ]
    assert set(required) <= set(METRIC_NAMES) and len(METRIC_NAMES) >= 25


def test_daily_returns_start_from_the_initial_equity():
    assert daily_returns(TS, EQ, 100.0) == pytest.approx(R)
    # several candles a day: only each day's last equity counts
    ts = T0 + np.array([0, 3600_000, DAY, DAY + 3600_000])
    assert daily_returns(ts, np.array([1.0, 105.0, 90.0, 84.0]), 100.0) == pytest.approx([0.05, 84 / 105 - 1])


def test_returns(m):
    assert m["total_return"] == pytest.approx(0.21)
    assert m["net_profit"] == pytest.approx(21.0)
    # 4 daily candles span 4 days
    assert m["annualized_return"] == pytest.approx(1.21 ** (365 / 4) - 1)


def test_volatility_sharpe_sortino(m):
    mean, sd = statistics.mean(R), statistics.stdev(R)  # sample standard deviation
    assert m["volatility"] == pytest.approx(sd * math.sqrt(365))
    assert m["sharpe_ratio"] == pytest.approx(mean / sd * math.sqrt(365))
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in R) / len(R))  # = 0.05
    assert downside == pytest.approx(0.05)
    assert m["sortino_ratio"] == pytest.approx(mean / downside * math.sqrt(365))


def test_drawdown_and_calmar(m):
    assert m["max_drawdown"] == pytest.approx(99 / 110 - 1)  # negative fraction
    assert m["max_drawdown"] < 0
    assert m["max_drawdown_duration"] == 2 * 86_400  # peak on day 1, recovered on day 3
    assert m["calmar_ratio"] == pytest.approx(m["annualized_return"] / (1 - 99 / 110))
    assert drawdown_curve(EQ, 100.0) == pytest.approx([0, 0, 99 / 110 - 1, 0])


def test_unrecovered_drawdown_runs_to_the_end():
    m = compute_metrics(TS, np.array([100.0, 90.0, 95.0, 80.0]), initial_equity=100.0)
    assert m["max_drawdown"] == pytest.approx(-0.2)
    # the peak is the initial equity, before the first candle: counted from the first candle
    assert m["max_drawdown_duration"] == 3 * 86_400


def test_var_and_cvar(m):
    # numpy linear interpolation: position 0.05 * 3 = 0.15 between the sorted -0.1 and 0.0
    assert m["var_95"] == pytest.approx(-0.1 + 0.15 * 0.1)
    assert m["cvar_95"] == pytest.approx(-0.1)
    assert m["best_day"] == pytest.approx(R[3]) and m["worst_day"] == pytest.approx(-0.1)
    assert m["trading_days"] == 4


def test_trade_statistics(m):
    assert m["total_trades"] == 6
    assert m["winning_trades"] == 2 and m["losing_trades"] == 3
    assert m["win_rate"] == pytest.approx(2 / 6)
    assert m["gross_profit"] == 30 and m["gross_loss"] == -15
    assert m["profit_factor"] == pytest.approx(2.0)
    assert m["expectancy"] == pytest.approx(15 / 6)
    assert m["avg_win"] == 15 and m["avg_loss"] == -5
    assert m["largest_win"] == 20 and m["largest_loss"] == -5
    assert m["max_consecutive_wins"] == 1 and m["max_consecutive_losses"] == 2
    assert m["avg_trade_duration"] == pytest.approx(100.0)
    assert m["total_fees"] == 6
    assert m["liquidations"] == 1
    assert m["long_trades"] == 4 and m["short_trades"] == 2
    assert m["avg_trade_return"] == pytest.approx(0.15 / 6)


def test_risk_of_ruin_formula():
    rets = np.array([0.1, -0.05, 0.2, -0.05, -0.05, 0.0])
    mean = rets.mean()
    rms = math.sqrt((rets**2).mean())
    p = 0.5 * (1 + mean / rms)
    assert risk_of_ruin(rets) == pytest.approx(((1 - p) / p) ** (0.5 / rms))
    assert risk_of_ruin(np.array([-0.1, 0.05])) == 1.0
    assert risk_of_ruin(np.array([])) is None


def test_benchmark_alpha_beta_and_buy_and_hold():
    bench = np.array([50.0, 55.0, 49.5, 60.5])
    strat = 100.0 + 2 * (bench - 50.0)  # twice the benchmark's moves in money, from 100
    m = compute_metrics(TS, strat, initial_equity=100.0, benchmark_close=bench, benchmark_start=50.0)
    assert m["buy_and_hold_return"] == pytest.approx(0.21)
    r = daily_returns(TS, strat, 100.0)
    b = daily_returns(TS, bench, 50.0)
    beta = statistics.covariance(list(r), list(b)) / statistics.variance(list(b))
    assert m["beta"] == pytest.approx(beta)
    assert m["alpha"] == pytest.approx((statistics.mean(r) - beta * statistics.mean(b)) * 365)


def test_exposure_and_leverage():
    size = np.array([0.0, 2.0, 2.0, 0.0])
    close = np.array([50.0, 55.0, 49.5, 60.5])
    m = compute_metrics(TS, EQ, initial_equity=100.0, position_size=size, close=close)
    assert m["exposure_time"] == 0.5
    lev = [2 * 55 / 110, 2 * 49.5 / 99]
    assert m["avg_leverage"] == pytest.approx(sum(lev) / 2)
    assert m["max_leverage"] == pytest.approx(max(lev))


def test_equity_curve_alone_leaves_trade_metrics_undefined():
    m = compute_metrics(TS, EQ)
    assert m["total_return"] == pytest.approx(0.21)
    assert m["total_trades"] is None and m["win_rate"] is None and m["alpha"] is None


def test_undefined_values_are_none_never_nan():
    m = compute_metrics(TS, np.full(4, 100.0), {"pnl": np.array([])}, initial_equity=100.0)
    assert m["sharpe_ratio"] is None and m["sortino_ratio"] is None and m["calmar_ratio"] is None
    assert m["profit_factor"] is None and m["win_rate"] is None and m["max_drawdown"] == 0
    assert all(v is None or math.isfinite(v) for v in m.values())


def test_trades_as_list_of_dicts():
    rows = [
        {
            "pnl": 1.0,
            "fees": 0.1,
            "duration": 10.0,
            "return_pct": 0.01,
            "side": "long",
            "exit_reason": "signal",
        }
    ]
    m = compute_metrics(TS, EQ, rows)
    assert m["total_trades"] == 1 and m["win_rate"] == 1.0 and m["profit_factor"] is None
