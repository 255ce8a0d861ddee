"""Built-in strategies: the registry, hand-checked signals and fills on tiny series,
and a run of every built-in on real candles."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from apps.backtests.engine import BacktestConfig, Candles, load_csv, run_backtest
from apps.backtests.engine.errors import ParamError
from apps.backtests.strategies import indicators as ta
from apps.backtests.strategies.builtin.dca import safety_ladder
from apps.backtests.strategies.builtin.grid import grid_prices
from apps.backtests.strategies.registry import (
    UnknownStrategy,
    build_strategy,
    get_strategy_class,
    list_strategies,
)

BUILTINS = (
    "bollinger_mean_reversion",
    "buy_and_hold",
    "dca",
    "donchian_breakout",
    "ema_crossover",
    "grid",
    "macd",
    "rsi_mean_reversion",
    "scalping",
    "sma_crossover",
)


def make_candles(close, *, high=None, low=None, open_=None, step_ms=60_000) -> Candles:
    """Candles whose open is the previous close (first: the close), 1-minute spacing by default."""
    close = np.asarray(close, dtype=float)
    if open_ is None:
        open_ = np.concatenate(([close[0]], close[:-1]))
    open_ = np.asarray(open_, dtype=float)
    high = np.maximum(open_, close) if high is None else np.asarray(high, dtype=float)
    low = np.minimum(open_, close) if low is None else np.asarray(low, dtype=float)
    n = len(close)
    return Candles.from_arrays(np.arange(n, dtype=np.int64) * step_ms, open_, high, low, close, np.ones(n))


def indices(mask) -> list[int]:
    return np.flatnonzero(np.asarray(mask)).tolist()


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_builtin_with_a_json_schema():
    infos = {info.name: info for info in list_strategies()}
    assert set(BUILTINS) <= set(infos)
    assert infos["sma_crossover"].style == "signal"
    assert infos["grid"].style == "event" and infos["dca"].style == "event"
    fast = infos["sma_crossover"].params["fast"]
    assert fast["type"] == "int" and fast["default"] == 20 and fast["min"] == 2
    assert infos["grid"].params["spacing"]["choices"] == ["arithmetic", "geometric"]
    json.dumps([info.to_dict() for info in infos.values()])  # JSON-able for the API
    for info in infos.values():
        assert info.description


def test_unknown_strategy_is_reported_with_the_available_names():
    with pytest.raises(UnknownStrategy, match=r"unknown strategy 'nope'.*sma_crossover"):
        build_strategy("nope", {})
    with pytest.raises(UnknownStrategy):
        get_strategy_class("nope")


def test_params_are_validated_with_every_problem_listed():
    with pytest.raises(ParamError) as info:
        build_strategy("sma_crossover", {"fast": "x", "slow": 1, "bogus": 3})
    assert set(info.value.fields) == {"fast", "slow", "bogus"}
    with pytest.raises(ParamError) as info:
        build_strategy("sma_crossover", {"fast": 50, "slow": 20})
    assert "must be less than slow" in info.value.fields["fast"]
    with pytest.raises(ParamError) as info:
        build_strategy("dca", {"base_order": 0.5, "safety_order": 0.3, "max_safety_orders": 3})
    assert "of equity" in info.value.fields["safety_order"]
    strategy = build_strategy("sma_crossover", {"fast": "5", "slow": 9.0})
    assert (strategy.p.fast, strategy.p.slow) == (5, 9)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_builds_with_its_defaults(name):
    strategy = build_strategy(name)
    assert strategy.name == name


# --------------------------------------------------------------------------- signal built-ins, by hand


def test_sma_crossover_signals_and_next_open_fills():
    close = [10, 10, 10, 12, 14, 11, 8, 7, 9, 12, 12]
    # sma2: -, 10, 10, 11, 13, 12.5, 9.5, 7.5, 8, 10.5, 12
    # sma3: -, -, 10, 10.67, 12, 12.33, 11, 8.67, 8, 9.33, 11
    # fast above slow from index 3 (was equal at 2), below at 6, above again at 9
    candles = make_candles(close)
    strategy = build_strategy("sma_crossover", {"fast": 2, "slow": 3})
    signals = strategy.signals(candles)
    assert indices(signals.long_entries) == [3, 9]
    assert indices(signals.long_exits) == [6]
    result = run_backtest(candles, strategy, BacktestConfig(initial_cash=1200.0))
    trades = result.trades
    assert len(trades) == 2
    # entry signal on candle 3 fills at the open of 4 (= close of 3 = 12); exit at the open of 7 (= 8)
    assert trades[0].entry_price == pytest.approx(12.0)
    assert trades[0].exit_price == pytest.approx(8.0)
    assert trades[0].size == pytest.approx(100.0)
    assert trades[0].pnl == pytest.approx(-400.0)
    # entry on 9 fills at the open of 10 (12), closed at the end of the data
    assert trades[1].entry_price == pytest.approx(12.0)
    assert trades[1].exit_reason == "end_of_data"


def test_ema_crossover_enters_after_the_bottom_of_a_v():
    close = list(range(30, 10, -1)) + list(range(11, 40))
    candles = make_candles(close)
    signals = build_strategy("ema_crossover", {"fast": 3, "slow": 6}).signals(candles)
    fast, slow = ta.ema(close, 3), ta.ema(close, 6)
    assert indices(signals.long_entries) == indices(ta.crossed_above(fast, slow))
    (entry,) = indices(signals.long_entries)
    assert 20 <= entry <= 24  # bottom at index 19
    assert indices(signals.long_exits) == []


def test_rsi_mean_reversion_buys_oversold_and_sells_overbought():
    # deltas -1 -1 -1 +1 +1 +1 with period 2: RSI 0, 0, 50, 75, 87.5
    candles = make_candles([10, 9, 8, 7, 8, 9, 10])
    signals = build_strategy("rsi_mean_reversion", {"period": 2}).signals(candles)
    assert indices(signals.long_entries) == [2, 3]
    assert indices(signals.long_exits) == [5, 6]


def test_bollinger_mean_reversion_enters_below_the_lower_band_and_exits_at_the_middle():
    # window 10,10,10,10,7: mean 9.4, std 1.2, lower band at 1.5 std = 7.6 > 7
    # next window 10,10,10,7,10: mean 9.4, close 10 above the middle
    candles = make_candles([10, 10, 10, 10, 7, 10])
    signals = build_strategy("bollinger_mean_reversion", {"period": 5, "num_std": 1.5}).signals(candles)
    assert indices(signals.long_entries) == [4]
    assert indices(signals.long_exits) == [5]
    upper = build_strategy("bollinger_mean_reversion", {"period": 5, "num_std": 1.5, "exit_at": "upper"})
    assert indices(upper.signals(candles).long_exits) == []


def test_macd_crosses_match_the_indicator():
    close = list(range(60, 30, -1)) + list(range(31, 80))
    candles = make_candles(close)
    signals = build_strategy("macd", {"fast": 3, "slow": 6, "signal": 3}).signals(candles)
    line, signal_line, _ = ta.macd(close, 3, 6, 3)
    assert indices(signals.long_entries) == indices(ta.crossed_above(line, signal_line))
    assert len(indices(signals.long_entries)) == 1
    assert indices(signals.long_entries)[0] > 29


def test_donchian_breakout_uses_the_previous_candles_channel():
    close = [10, 10, 10, 10, 12, 11, 9]
    high = [c + 0.5 for c in close]
    low = [c - 0.5 for c in close]
    candles = make_candles(close, high=high, low=low)
    signals = build_strategy("donchian_breakout", {"entry_period": 3, "exit_period": 2}).signals(candles)
    # candle 4: close 12 > max(high[1:4]) = 10.5; candle 6: close 9 < min(low[4:6]) = 10.5
    assert indices(signals.long_entries) == [4]
    assert indices(signals.long_exits) == [6]


def test_scalping_uses_trend_filter_rsi_trigger_and_a_bracket():
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.003, 2000)))
    candles = make_candles(close)
    strategy = build_strategy("scalping")
    signals = strategy.signals(candles)
    fast, slow = ta.ema(close, 9), ta.ema(close, 21)
    value = ta.rsi(close, 7)
    expected = (fast > slow) & ta.crossed_above(value, 35.0)
    assert indices(signals.long_entries) == indices(expected)
    assert signals.stop_loss == 0.004 and signals.take_profit == 0.006
    result = run_backtest(candles, strategy, BacktestConfig())
    reasons = {t.exit_reason for t in result.trades}
    assert {"stop_loss", "take_profit"} <= reasons


def test_buy_and_hold_buys_at_the_second_open_and_holds():
    candles = make_candles([100, 110, 120, 90, 130], step_ms=86_400_000)
    result = run_backtest(candles, build_strategy("buy_and_hold"), BacktestConfig(initial_cash=1000.0))
    (trade,) = result.trades
    assert trade.entry_price == pytest.approx(100.0)  # open of candle 1 = close of candle 0
    assert trade.exit_price == pytest.approx(130.0)
    assert result.metrics["total_return"] == pytest.approx(0.3)


# --------------------------------------------------------------------------- event built-ins, by hand


def test_grid_prices_arithmetic_and_geometric():
    np.testing.assert_allclose(grid_prices(90, 110, 3, "arithmetic"), [90, 100, 110])
    np.testing.assert_allclose(grid_prices(100, 400, 3, "geometric"), [100, 200, 400])


def test_grid_buys_on_a_line_and_sells_one_line_higher():
    # lines 90, 100, 110; start at 105: buy limits at 90 (55.56) and 100 (50), 5000 quote each
    close = [105, 104, 99, 104, 111, 108]
    high = [105, 105, 104, 105, 112, 111]
    low = [104, 103, 99, 99, 104, 107]
    open_ = [105, 105, 104, 99, 104, 111]
    candles = make_candles(close, high=high, low=low, open_=open_, step_ms=86_400_000)
    strategy = build_strategy("grid", {"lower": 90, "upper": 110, "levels": 3, "investment": 1.0})
    result = run_backtest(candles, strategy, BacktestConfig(initial_cash=10_000.0))
    (trade,) = result.trades
    assert trade.entry_price == pytest.approx(100.0)
    assert trade.exit_price == pytest.approx(110.0)
    assert trade.size == pytest.approx(50.0)
    assert trade.pnl == pytest.approx(500.0)
    # after the sell, the buy at 100 is back (and the one at 90 never filled)
    assert sorted(strategy.line_of_order.values()) == [0, 1]


def test_grid_stocks_lines_above_the_start_price_and_sells_them_higher():
    # lines 100, 105, 110, 115; start at 107: buys at 100 and 105, one market buy for line 110
    close = [107, 107, 116, 116]
    open_ = [107, 107, 107, 116]
    high = [107, 107, 116, 116]
    low = [107, 107, 107, 116]
    candles = make_candles(close, high=high, low=low, open_=open_, step_ms=86_400_000)
    strategy = build_strategy("grid", {"lower": 100, "upper": 115, "levels": 4, "investment": 0.9})
    result = run_backtest(candles, strategy, BacktestConfig(initial_cash=9000.0))
    (trade,) = result.trades
    # 9000 * 0.9 / 3 = 2700 quote per line -> 2700 / 110 units bought at 107, sold at 115
    assert trade.entry_price == pytest.approx(107.0)
    assert trade.exit_price == pytest.approx(115.0)
    assert trade.size == pytest.approx(2700 / 110)


def test_dca_safety_ladder():
    ladder = safety_ladder(100.0, 3, 0.02, 1.5, 2.0)
    # deviations 2%, 2+3=5%, 5+4.5=9.5%; sizes 1, 2, 4
    assert [p for p, _ in ladder] == pytest.approx([98.0, 95.0, 90.5])
    assert [m for _, m in ladder] == [1.0, 2.0, 4.0]


def test_dca_averages_down_and_takes_profit_above_the_average():
    params = {
        "base_order": 0.1,
        "safety_order": 0.1,
        "max_safety_orders": 2,
        "price_deviation": 0.1,
        "step_scale": 1.0,
        "volume_scale": 2.0,
        "take_profit": 0.05,
    }
    # base: 1000 quote at 100 (10 units); safety 1 at 90 (1000 quote), safety 2 at 80 (2000 quote)
    open_ = [100, 100, 100, 90, 100]
    high = [100, 100, 100, 100, 100]
    low = [100, 100, 89, 90, 100]
    close = [100, 100, 90, 100, 100]
    candles = make_candles(close, high=high, low=low, open_=open_, step_ms=86_400_000)
    strategy = build_strategy("dca", params)
    result = run_backtest(candles, strategy, BacktestConfig(initial_cash=10_000.0))
    first = result.trades[0]
    # 2000 quote for 10 + 11.11 units: average 94.74; take profit 5% above it
    units = 10 + 1000 / 90
    assert first.size == pytest.approx(units)
    assert first.entry_price == pytest.approx(2000 / units)
    assert first.exit_price == pytest.approx(2000 / units * 1.05)
    assert first.pnl == pytest.approx(100.0)
    # a new cycle started with the next open
    assert result.trades[-1].entry_time == candles.timestamp[4]


# --------------------------------------------------------------------------- real candles


@pytest.fixture(scope="module")
def shared_data() -> Path:
    # Same rule as the shared_data_dir fixture: $SHARED_DATA_DIR or ../shared/data from the repo root.
    root = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("SHARED_DATA_DIR") or root.parent / "shared" / "data")


@pytest.fixture(scope="module")
def btc_1h(shared_data: Path) -> Candles:
    candles = load_csv(shared_data / "ohlcv" / "binance_BTCUSDT_1h.csv.gz")
    return candles.slice(len(candles) - 6000, len(candles))


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_on_real_btc_candles(name, btc_1h):
    config = BacktestConfig(initial_cash=10_000.0, fee=0.001)
    result = run_backtest(btc_1h, build_strategy(name), config)
    metrics = result.metrics
    assert metrics["total_trades"] >= 1
    assert np.all(np.isfinite(result.equity)) and np.all(result.equity >= 0)
    assert metrics["total_fees"] > 0
    again = run_backtest(btc_1h, build_strategy(name), config)
    assert json.dumps(again.to_dict(), sort_keys=True) == json.dumps(result.to_dict(), sort_keys=True)
