"""Signal strategies: next-open fills, conflict rules, and the vectorized path agreeing with the broker path."""

from __future__ import annotations

import numpy as np
import pytest

from apps.backtests.engine import BacktestConfig, Signals, SignalStrategy, run_backtest

from .engine_support import candles, random_walk


class Fixed(SignalStrategy):
    name = "fixed"

    def __init__(self, le, lx=None, se=None, sx=None, **stops):
        super().__init__()
        self.arrays = (le, lx, se, sx)
        self.stops = stops

    def signals(self, data):
        le, lx, se, sx = (None if a is None else np.asarray(a, dtype=bool) for a in self.arrays)
        return Signals(le, lx, se, sx, **self.stops)


ROWS = [
    (100, 101, 99, 100),
    (102, 103, 101, 102),
    (104, 105, 103, 104),
    (106, 107, 105, 106),
    (108, 109, 107, 108),
]


def test_entry_signal_fills_at_next_open_and_exit_at_the_open_after_the_exit_signal():
    s = Fixed([1, 0, 0, 0, 0], [0, 0, 1, 0, 0])
    r = run_backtest(candles(ROWS), s, BacktestConfig(initial_cash=1000))
    (t,) = r.trades
    assert (t.entry_price, t.exit_price) == (102, 106)
    assert r.info["path"] == "vectorized"
    assert r.equity[0] == 1000 and r.equity[1] == pytest.approx(1000)
    assert r.equity[2] == pytest.approx(1000 / 102 * 104)
    assert r.equity[3] == pytest.approx(1000 / 102 * 106) == r.equity[4]


def test_signal_on_the_last_candle_is_not_filled_and_open_trade_closes_at_the_end():
    r = run_backtest(candles(ROWS), Fixed([0, 0, 0, 0, 1]), BacktestConfig())
    assert r.trades == []
    r = run_backtest(candles(ROWS), Fixed([0, 0, 0, 1, 0]), BacktestConfig(initial_cash=1000))
    assert r.trades[0].exit_reason == "end_of_data" and r.trades[0].exit_price == 108


def test_exit_wins_over_entry_on_the_same_candle_and_opposite_entries_cancel():
    r = run_backtest(candles(ROWS), Fixed([1, 0, 0, 0, 0], [1, 0, 0, 0, 0]), BacktestConfig())
    assert r.trades == []
    cfg = BacktestConfig(market_type="futures", allow_short=True)
    r = run_backtest(candles(ROWS), Fixed([1, 0, 0, 0, 0], None, [1, 0, 0, 0, 0]), cfg)
    assert r.trades == []


def test_reversal_closes_and_opens_at_the_same_open():
    cfg = BacktestConfig(initial_cash=1000, market_type="futures", allow_short=True)
    r = run_backtest(candles(ROWS), Fixed([1, 0, 0, 0, 0], None, [0, 1, 0, 0, 0]), cfg)
    long, short = r.trades
    assert long.side == "long" and long.exit_price == 104 and long.exit_time == short.entry_time
    assert short.side == "short" and short.entry_price == 104 and short.exit_reason == "end_of_data"


def test_short_signals_are_ignored_unless_shorting_is_allowed():
    r = run_backtest(candles(ROWS), Fixed([0] * 5, None, [1, 0, 0, 0, 0]), BacktestConfig())
    assert r.trades == []


def test_signal_stops_use_the_broker_path():
    rows = [(100, 100, 100, 100), (100, 101, 94, 99), (99, 99, 99, 99)]
    r = run_backtest(candles(rows), Fixed([1, 0, 0], stop_loss=0.05), BacktestConfig())
    assert r.info["path"] == "broker"
    assert r.trades[0].exit_reason == "stop_loss" and r.trades[0].exit_price == pytest.approx(95)


def random_signals(n, seed, p=0.03):
    rng = np.random.default_rng(seed)
    return [rng.random(n) < p for _ in range(4)]


CONFIGS = [
    {"fee": 0.001},
    {
        "fee": {"type": "percentage", "maker": 0.0002, "taker": 0.0005},
        "slippage": 0.0005,
    },
    {
        "slippage": {"type": "fixed", "amount": 0.01},
        "sizing": {"type": "percent_equity", "value": 0.5},
    },
    {"market_type": "futures", "allow_short": True, "fee": 0.0004},
    {"market_type": "futures", "allow_short": True, "leverage": 3, "fee": 0.0004},
    {
        "market_type": "futures",
        "allow_short": True,
        "leverage": 3,
        "margin_mode": "cross",
        "fee": 0.0004,
    },
    {
        "market_type": "futures",
        "allow_short": True,
        "leverage": 50,
        "fee": 0.0004,
    },  # liquidations: falls back
]


@pytest.mark.parametrize("extra", CONFIGS)
@pytest.mark.parametrize("seed", [1, 2])
def test_vectorized_path_matches_the_broker_path(extra, seed):
    data = random_walk(3000, seed=seed)
    strat = Fixed(*random_signals(len(data), seed))
    fast = run_backtest(data, strat, BacktestConfig(**extra))
    slow = run_backtest(data, strat, BacktestConfig(**extra, extra={"force_broker": True}))
    assert slow.info["path"] == "broker"
    if extra.get("leverage", 1) < 10:
        assert fast.info["path"] == "vectorized"
    a, b = fast.trade_columns, slow.trade_columns
    assert len(a["pnl"]) == len(b["pnl"]) > 10
    for name in ("entry_time", "exit_time"):
        assert np.array_equal(a[name], b[name])
    assert list(a["side"]) == list(b["side"]) and list(a["exit_reason"]) == list(b["exit_reason"])
    for name in (
        "size",
        "entry_price",
        "exit_price",
        "fees",
        "pnl",
        "return_pct",
        "mae",
        "mfe",
    ):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(fast.equity, slow.equity, rtol=1e-9)
    for key, value in fast.metrics.items():
        other = slow.metrics[key]
        if value is None or other is None:
            assert value == other, key
        else:
            assert value == pytest.approx(other, rel=1e-7, abs=1e-9), key


def test_high_leverage_run_reports_liquidations():
    data = random_walk(3000, seed=4)
    strat = Fixed(*random_signals(len(data), 4))
    cfg = BacktestConfig(market_type="futures", allow_short=True, leverage=50, fee=0.0004)
    r = run_backtest(data, strat, cfg)
    assert r.info["path"] == "broker"
    assert r.metrics["liquidations"] > 0
    assert r.equity.min() >= 0
