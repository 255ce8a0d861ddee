"""Whole runs: determinism, float64 precision vs Decimal, real candles, API errors, progress and cancel."""

from __future__ import annotations

import json
from decimal import Decimal, getcontext

import numpy as np
import pytest

from apps.backtests.engine import (
    BacktestCancelled,
    BacktestConfig,
    BacktestError,
    Candles,
    ConfigError,
    Param,
    ParamError,
    Signals,
    SignalStrategy,
    Strategy,
    StrategyError,
    grid,
    load_csv,
    run_backtest,
    validate_params,
)

from .engine_support import random_walk, shared_data_dir


def sma(x, n):
    out = np.full(len(x), np.nan)
    c = np.cumsum(x)
    out[n - 1 :] = (c[n - 1 :] - np.concatenate(([0.0], c[:-n]))) / n
    return out


class Cross(SignalStrategy):
    name = "cross"
    params = {
        "fast": Param("int", 10, min=2),
        "slow": Param("int", 30, min=3),
        "short": Param("bool", False),
    }

    def signals(self, data):
        above = sma(data.close, self.p.fast) > sma(data.close, self.p.slow)
        prev = np.concatenate(([False], above[:-1]))
        up, down = above & ~prev, ~above & prev
        if self.p.short:
            return Signals(up, down, down, up)
        return Signals(up, down)


class Bracketed(Strategy):
    name = "bracketed"

    def on_data(self, candle):
        h = self.history(20)
        if len(h) == 20 and not self.get_position_size() and candle.close > h.close.mean():
            self.buy(stop_loss=0.01, take_profit=0.02, trailing_stop=0.015)


@pytest.fixture(scope="module")
def btc_1h() -> Candles:
    path = shared_data_dir() / "ohlcv" / "binance_BTCUSDT_1h.csv.gz"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return load_csv(path)


def dumps(result) -> str:
    return json.dumps(result.to_dict(), sort_keys=True)


# ----------------------------------------------------------------- determinism
def test_same_inputs_give_byte_identical_json():
    data = random_walk(4000, seed=11)
    cfg = {"fee": 0.001, "slippage": {"type": "random", "max": 0.001, "seed": 5}}
    a = dumps(run_backtest(data, Cross(), BacktestConfig(**cfg)))
    b = dumps(run_backtest(data, Cross(), BacktestConfig(**cfg)))
    assert a == b
    c = dumps(run_backtest(data, Bracketed(), BacktestConfig(**cfg)))
    assert c == dumps(run_backtest(data, Bracketed(), BacktestConfig(**cfg)))
    other_seed = {**cfg, "slippage": {"type": "random", "max": 0.001, "seed": 6}}
    assert c != dumps(run_backtest(data, Bracketed(), BacktestConfig(**other_seed)))
    parsed = json.loads(a)
    assert {"metrics", "trades", "equity"} <= parsed.keys()
    assert parsed["equity"][0][0] == int(data.timestamp[0])


# ------------------------------------------------------------------- precision
def test_float64_engine_matches_exact_decimal_arithmetic(btc_1h):
    """The engine's documented tolerance: relative error below 1e-9 against Decimal."""
    cfg = BacktestConfig(fee=0.001)
    result = run_backtest(btc_1h, Cross(fast=20, slow=50), cfg)
    trades = result.trades
    assert len(trades) > 500
    getcontext().prec = 50
    fee = Decimal("0.001")
    equity = Decimal(10000)
    for t in trades:
        # exact replay of each trade from the raw prices (100% of equity, fee on both fills)
        entry = Decimal(repr(float(btc_1h.open[np.searchsorted(btc_1h.timestamp, t.entry_time)])))
        if t.exit_reason == "end_of_data":
            exit_ = Decimal(repr(float(btc_1h.close[-1])))
        else:
            exit_ = Decimal(repr(float(btc_1h.open[np.searchsorted(btc_1h.timestamp, t.exit_time)])))
        qty = equity / (entry * (1 + fee))
        before = equity
        equity = equity - qty * entry * (1 + fee) + qty * exit_ * (1 - fee)
        assert abs(Decimal(repr(t.pnl)) - (equity - before)) <= Decimal("1e-9") * before
    final = Decimal(repr(float(result.equity[-1])))
    assert abs(final / equity - 1) < Decimal("1e-9")


# ------------------------------------------------------------------ real data
@pytest.mark.parametrize(
    "config",
    [
        {"fee": 0.001},
        {"fee": 0.0004, "market_type": "futures", "allow_short": True, "leverage": 2},
        {
            "fee": 0.0004,
            "market_type": "futures",
            "allow_short": True,
            "leverage": 3,
            "margin_mode": "cross",
        },
    ],
)
def test_real_btc_candles_signal_strategy(btc_1h, config):
    short = config.get("allow_short", False)
    r = run_backtest(btc_1h, Cross(fast=20, slow=50, short=short), BacktestConfig(**config))
    m = r.metrics
    assert m["total_trades"] > 500 and m["end_equity"] > 0
    assert -1 <= m["max_drawdown"] < 0
    assert all(v is None or np.isfinite(v) for v in m.values())
    assert r.equity.min() >= 0 and len(r.equity) == len(btc_1h)
    if short:
        assert m["short_trades"] > 0


def test_real_btc_all_in_isolated_5x_is_wiped_out_by_one_liquidation(btc_1h):
    """100% of equity as isolated margin at 5x: the 2018 crash liquidates it and the margin is gone."""
    config = BacktestConfig(fee=0.0004, market_type="futures", allow_short=True, leverage=5)
    r = run_backtest(btc_1h, Cross(fast=20, slow=50, short=True), config)
    assert r.trade_columns["exit_reason"][-1] == "liquidation"
    assert r.metrics["liquidations"] == 1 and r.metrics["end_equity"] == pytest.approx(0, abs=1e-6)


def test_real_btc_candles_event_strategy_with_brackets(btc_1h):
    r = run_backtest(btc_1h.slice(0, 20_000), Bracketed(), BacktestConfig(fee=0.001))
    reasons = set(r.trade_columns["exit_reason"])
    assert {"stop_loss", "take_profit"} <= reasons or {
        "stop_loss",
        "trailing_stop",
    } <= reasons
    assert r.metrics["total_trades"] > 100


def test_real_futures_candles_with_leverage_and_funding():
    path = shared_data_dir() / "ohlcv" / "binanceusdm_XRPUSDT_5m.csv.gz"
    if not path.exists():
        pytest.skip("shared data not found")
    data = load_csv(path)
    cfg = BacktestConfig(
        market_type="futures",
        allow_short=True,
        leverage=20,
        fee=0.0004,
        funding_rates=0.0001,
    )
    r = run_backtest(data, Cross(fast=5, slow=20, short=True), cfg)
    assert r.info["path"] == "broker"  # funding runs through the broker
    assert r.metrics["total_funding"] != 0
    assert r.equity.min() >= 0


def test_dataframe_input_matches_candles(btc_1h):
    part = btc_1h.slice(0, 3000)
    a = run_backtest(part, Cross(), BacktestConfig(fee=0.001))
    b = run_backtest(part.to_frame(), Cross(), BacktestConfig(fee=0.001))
    assert dumps(a) == dumps(b)


def test_start_end_select_a_range(btc_1h):
    cfg = BacktestConfig(start="2020-01-01T00:00:00Z", end="2020-02-01T00:00:00Z")
    r = run_backtest(btc_1h, Cross(), cfg)
    assert len(r.equity) == 31 * 24
    with pytest.raises(BacktestError, match="no candles"):
        run_backtest(btc_1h, Cross(), BacktestConfig(start="2030-01-01", end="2030-02-01"))


# ----------------------------------------------------------- API and errors
def test_progress_is_reported_at_most_about_100_times_and_cancel_stops_the_run():
    data = random_walk(20_000)
    calls = []
    run_backtest(data, Bracketed(), BacktestConfig(), progress=calls.append)
    assert 50 <= len(calls) <= 102 and calls[-1] == 1.0 and calls == sorted(calls)
    polls = iter(range(1000))
    with pytest.raises(BacktestCancelled):
        run_backtest(data, Bracketed(), BacktestConfig(), should_cancel=lambda: next(polls) > 10)


def test_strategy_exception_is_reported_with_its_line():
    class Broken(Strategy):
        def on_data(self, candle):
            if candle.index == 5:
                raise ValueError("boom")

    with pytest.raises(StrategyError) as exc:
        run_backtest(random_walk(50), Broken(), BacktestConfig())
    assert "boom" in str(exc.value) and exc.value.line is not None


def test_bad_signals_and_bad_data_are_clear_errors():
    class Short(SignalStrategy):
        def signals(self, data):
            return Signals(np.zeros(3, dtype=bool))

    with pytest.raises(StrategyError, match="shape"):
        run_backtest(random_walk(50), Short(), BacktestConfig())
    bad = Candles.from_arrays([0, 60_000], [1, 1], [0.5, 1], [0.9, 1], [1, 1])
    with pytest.raises(BacktestError, match="inconsistent"):
        run_backtest(bad, Cross(), BacktestConfig())
    with pytest.raises(BacktestError, match="not found"):
        load_csv("/nonexistent.csv.gz")


def test_config_round_trips_through_json_and_rejects_unknown_keys():
    cfg = BacktestConfig(
        market_type="futures",
        leverage=3,
        fee=0.001,
        slippage=0.0005,
        funding_rates=[[0, 0.0001]],
    )
    again = BacktestConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ConfigError) as exc:
        BacktestConfig.from_dict({"cash": 5})
    assert exc.value.fields == {"cash": "unknown option"}


def test_params_validation_and_grid():
    schema = Cross.params
    assert validate_params(schema, {"fast": "12"}) == {
        "fast": 12,
        "slow": 30,
        "short": False,
    }
    with pytest.raises(ParamError) as exc:
        validate_params(schema, {"fast": 1, "slow": "x", "nope": 1})
    assert set(exc.value.fields) == {"fast", "slow", "nope"}
    combos = list(grid(schema, {"fast": [5, 10], "slow": range(20, 40, 10)}))
    assert len(combos) == 4 and combos[0] == {"fast": 5, "slow": 20, "short": False}
    with pytest.raises(ParamError):
        Cross(fast=0)
    assert Cross(fast=7).p.fast == 7


def test_a_run_without_trades_says_why():
    candles = random_walk(50)

    class Never(SignalStrategy):
        def signals(self, data):
            return Signals(np.zeros(len(data), dtype=bool))

    class ShortsOnly(SignalStrategy):
        def signals(self, data):
            shorts = np.zeros(len(data), dtype=bool)
            shorts[10] = True
            return Signals(np.zeros(len(data), dtype=bool), short_entries=shorts)

    class LastCandle(SignalStrategy):
        def signals(self, data):
            entries = np.zeros(len(data), dtype=bool)
            entries[-1] = True
            return Signals(entries)

    def reason(strategy, **config):
        result = run_backtest(candles, strategy, BacktestConfig(**config))
        assert result.metrics["total_trades"] == 0
        return result.info["no_trades_reason"]

    assert "no entry signal in the 50 candles" in reason(Never())
    assert "only signalled short entries (1) and shorting is off" in reason(ShortsOnly())
    assert "last candle" in reason(LastCandle())
    traded = run_backtest(random_walk(2000), Cross(), BacktestConfig())
    assert traded.metrics["total_trades"] > 0 and "no_trades_reason" not in traded.info
