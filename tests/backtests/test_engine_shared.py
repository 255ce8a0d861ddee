"""engine.shared: a sweep's runs share indicators and per-candle-set arrays, and each run's numbers
are exactly those of the same run alone."""

from __future__ import annotations

import numpy as np
import pytest

from apps.backtests.engine import BacktestConfig, run_backtest
from apps.backtests.engine.shared import SharedScope, shared, shared_arrays
from apps.backtests.strategies import indicators as ta
from apps.backtests.strategies.registry import build_strategy
from tests.backtests.engine_support import DAY, T0, random_walk

# Every built-in signal strategy with a few parameter sets, on spot and futures, through the
# vectorized path and the broker path (a stop loss), with and without a config range.
SWEEPS = [
    ("sma_crossover", [{"fast": 5, "slow": 50}, {"fast": 5, "slow": 80}, {"fast": 10, "slow": 50}]),
    ("ema_crossover", [{"fast": 5, "slow": 40}, {"fast": 8, "slow": 40}]),
    ("macd", [{"fast": 12, "slow": 26, "signal": 9}, {"fast": 12, "slow": 40, "signal": 9}]),
    ("rsi_mean_reversion", [{"period": 14}, {"period": 21}]),
    ("bollinger_mean_reversion", [{"period": 20}, {"period": 20, "num_std": 2.5}]),
    ("donchian_breakout", [{"entry_period": 20, "exit_period": 10}, {"entry_period": 30}]),
    ("scalping", [{}, {"fast": 5}]),
]
CONFIGS = [
    {"initial_cash": 10_000.0, "fee": 0.001},
    {"initial_cash": 10_000.0, "fee": 0.001, "stop_loss": 0.01},
    {"initial_cash": 10_000.0, "market_type": "futures", "leverage": 3, "allow_short": True},
    {"initial_cash": 10_000.0, "start": T0 + DAY, "end": T0 + 4 * DAY},
]


def _same(a, b) -> None:
    assert a.metrics == b.metrics
    assert np.array_equal(a.equity, b.equity)
    assert np.array_equal(a.position_size, b.position_size)
    for name, column in a.trade_columns.items():
        assert np.array_equal(column, b.trade_columns[name]), name


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(("name", "param_sets"), SWEEPS)
def test_runs_in_a_shared_scope_equal_the_same_runs_alone_bit_for_bit(name, param_sets, config):
    candles = random_walk(6 * 1440, seed=3)
    cfg = BacktestConfig.from_dict(config)
    alone = [run_backtest(candles, build_strategy(name, p), cfg) for p in param_sets]
    with shared_arrays() as scope:
        # Twice: the second pass reads everything from the scope.
        for _ in range(2):
            together = [run_backtest(candles, build_strategy(name, p), cfg) for p in param_sets]
            for a, b in zip(alone, together, strict=True):
                _same(a, b)
    assert scope.hits > 0


def test_a_sweep_computes_each_distinct_moving_average_once():
    candles = random_walk(3 * 1440)
    grid = [{"fast": f, "slow": s} for f in (5, 10, 20) for s in (30, 60, 90, 120)]
    with shared_arrays() as scope:
        for params in grid:
            run_backtest(candles, build_strategy("sma_crossover", params), {"initial_cash": 1000.0})
    assert scope.computed["indicators.sma"] == 7  # 3 fast + 4 slow windows, not 2 x 12
    assert scope.computed["candles.validate"] == 1
    assert scope.computed["metrics.benchmark_returns"] == 1


def test_shared_indicator_arrays_are_read_only_so_no_run_can_change_the_next_ones():
    close = random_walk(500).close
    with shared_arrays():
        first = ta.sma(close, 20)
        assert ta.sma(close, 20) is first
        with pytest.raises(ValueError):
            first[100] = 0.0
    alone = ta.sma(close, 20)
    assert alone is not first
    assert np.array_equal(alone, first, equal_nan=True)


def test_arrays_are_shared_by_identity_and_other_inputs_by_value():
    a, b = np.arange(5.0), np.arange(5.0)
    calls = []

    def compute(x, k):
        calls.append((x, k))
        return x * k

    with shared_arrays():
        shared("times", (a, 2.0), lambda: compute(a, 2.0))
        shared("times", (a, float("2")), lambda: compute(a, 2.0))  # an equal number
        shared("times", (b, 2.0), lambda: compute(b, 2.0))  # an equal array is another input
    assert len(calls) == 2


def test_outside_a_scope_every_call_computes():
    calls = []
    for _ in range(2):
        shared("x", (1,), lambda: calls.append(1))
    assert len(calls) == 2


def test_a_scope_drops_the_least_recently_used_arrays_beyond_its_budget():
    scope = SharedScope(max_bytes=3 * 800)
    arrays = [np.zeros(100) for _ in range(4)]  # 800 bytes each
    with shared_arrays(scope):
        for k in range(3):
            shared("copy", (arrays[k],), lambda k=k: arrays[k].copy())
        shared("copy", (arrays[0],), lambda: pytest.fail("still cached"))  # refreshes 0
        shared("copy", (arrays[3],), lambda: arrays[3].copy())  # evicts 1, the oldest
    assert scope.bytes <= scope.max_bytes and len(scope) == 3
    assert scope.computed["copy"] == 4
    with shared_arrays(scope):
        recomputed = []
        shared("copy", (arrays[1],), lambda: recomputed.append(1) or arrays[1].copy())
    assert recomputed == [1]
