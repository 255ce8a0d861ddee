"""Property tests: equity equals cash plus marked position, nothing goes negative, paths agree."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.backtests.engine import (
    BacktestConfig,
    Candles,
    Signals,
    SignalStrategy,
    Strategy,
    run_backtest,
)

from .engine_support import MINUTE, T0


@st.composite
def ohlc(draw, min_size=5, max_size=60):
    n = draw(st.integers(min_size, max_size))
    moves = draw(st.lists(st.floats(-0.2, 0.2), min_size=n, max_size=n))
    wicks = draw(st.lists(st.tuples(st.floats(0, 0.1), st.floats(0, 0.1)), min_size=n, max_size=n))
    gaps = draw(st.lists(st.floats(-0.1, 0.1), min_size=n, max_size=n))
    close = 100.0 * np.exp(np.cumsum(moves))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(gaps)
    up = np.array([w[0] for w in wicks])
    down = np.array([w[1] for w in wicks])
    high = np.maximum(open_, close) * (1 + up)
    low = np.minimum(open_, close) * (1 - down)
    ts = T0 + np.arange(n, dtype=np.int64) * MINUTE * 60
    return Candles.from_arrays(ts, open_, high, low, close, np.full(n, 50.0))


configs = st.one_of(
    st.builds(
        lambda fee, slip: BacktestConfig(fee=fee, slippage=slip),
        st.sampled_from([0, 0.001, {"type": "fixed", "amount": 0.5}]),
        st.sampled_from(
            [
                0,
                0.001,
                {"type": "volume", "impact": 0.5},
                {"type": "random", "max": 0.002, "seed": 1},
            ]
        ),
    ),
    st.builds(
        lambda lev, mode, fee: BacktestConfig(
            market_type="futures",
            leverage=lev,
            margin_mode=mode,
            allow_short=True,
            fee=fee,
        ),
        st.sampled_from([1, 2, 10, 50, 100]),
        st.sampled_from(["isolated", "cross"]),
        st.sampled_from([0, 0.0005]),
    ),
)

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "buy",
                "sell",
                "buy_all",
                "sell_all",
                "close",
                "limit",
                "stop",
                "tp",
                "trail",
                "cancel",
            ]
        ),
        st.floats(0.01, 3.0),
        st.floats(0.8, 1.2),
    ),
    min_size=0,
    max_size=60,
)


class Random(Strategy):
    name = "random_actions"

    def __init__(self, actions):
        super().__init__()
        self.actions = actions
        self.rows = []

    def on_data(self, candle):
        i = candle.index
        size = self.get_position_size()
        entry = self.get_entry_price()
        self.rows.append((i, self.get_equity(), self.get_cash(), size, entry, candle.close))
        if i >= len(self.actions):
            return
        kind, amount, factor = self.actions[i]
        price = candle.close * factor
        if kind == "buy":
            self.buy(amount)
        elif kind == "sell":
            self.sell(amount)
        elif kind == "buy_all":
            self.buy(stop_loss=0.05) if factor > 1 else self.buy()
        elif kind == "sell_all":
            self.sell(take_profit=0.05)
        elif kind == "close":
            self.close_position(50.0 if factor > 1 else 100.0)
        elif kind == "limit":
            (self.buy_limit if factor < 1 else self.sell_limit)(amount, price)
        elif kind == "stop" and size:
            self.stop_market(None, price)
        elif kind == "tp" and size:
            self.take_profit(None, price)
        elif kind == "trail" and size:
            self.trailing_stop(min(0.5, abs(factor - 1) + 0.01))
        elif kind == "cancel":
            self.cancel_all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=ohlc(), config=configs, actions=ACTIONS)
def test_equity_is_cash_plus_marked_position_and_never_negative(data, config, actions):
    strat = Random(actions)
    result = run_backtest(data, strat, config)
    futures = config.market_type == "futures"
    for i, equity, cash, size, entry, close in strat.rows:
        marked = cash + size * (close - entry) if futures and size else cash + size * close
        assert abs(equity - marked) <= 1e-9 * max(1.0, abs(equity))
        assert cash >= 0 and equity >= -1e-9 * config.initial_cash
        if not futures:
            assert size >= 0
        # the reported curve is the same account, rebuilt from state changes
        if not (i == len(data) - 1 and config.close_at_end):
            assert abs(result.equity[i] - max(equity, 0.0)) <= 1e-7 * max(1.0, equity)
    assert np.all(result.equity >= 0)
    assert np.all(result.drawdown <= 0) and np.all(result.drawdown >= -1)
    trades = result.trade_columns
    assert np.all(trades["mae"] <= 1e-12) and np.all(trades["mfe"] >= -1e-12)
    assert np.all(trades["exit_time"] >= trades["entry_time"])
    # final equity is the initial cash plus every trade's pnl (positions are closed at the end)
    total = config.initial_cash + trades["pnl"].sum()
    assert abs(result.equity[-1] - max(total, 0.0)) <= 1e-6 * config.initial_cash


class RandomSignals(SignalStrategy):
    name = "random_signals"

    def __init__(self, arrays):
        super().__init__()
        self.arrays = arrays

    def signals(self, data):
        return Signals(*self.arrays)


@settings(max_examples=100, deadline=None)
@given(
    data=ohlc(min_size=3, max_size=80),
    seed=st.integers(0, 10_000),
    config=st.sampled_from(
        [
            BacktestConfig(fee=0.001),
            BacktestConfig(
                fee=0.001,
                slippage=0.002,
                sizing={"type": "percent_equity", "value": 0.7},
            ),
            BacktestConfig(market_type="futures", allow_short=True, leverage=5, fee=0.0004),
            BacktestConfig(market_type="futures", allow_short=True, leverage=3, margin_mode="cross"),
        ]
    ),
)
def test_vectorized_and_broker_paths_agree_on_any_signals(data, seed, config):
    rng = np.random.default_rng(seed)
    arrays = [rng.random(len(data)) < 0.3 for _ in range(4)]
    fast = run_backtest(data, RandomSignals(arrays), config)
    slow_cfg = BacktestConfig.from_dict({**config.to_dict(), "extra": {"force_broker": True}})
    slow = run_backtest(data, RandomSignals(arrays), slow_cfg)
    assert len(fast.trade_columns["pnl"]) == len(slow.trade_columns["pnl"])
    np.testing.assert_allclose(fast.equity, slow.equity, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fast.trade_columns["pnl"], slow.trade_columns["pnl"], rtol=1e-9, atol=1e-9)
