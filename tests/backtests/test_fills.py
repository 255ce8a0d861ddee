"""Fill rules with hand-computed expectations: next open, limit, stop, TP, trailing, both touched, gaps."""

from __future__ import annotations

import pytest

from apps.backtests.engine import BacktestConfig, run_backtest
from apps.backtests.engine.fills import candle_path, evaluate_order, partial_fill_size

from .engine_support import Script, candles


def cfg(**kw) -> BacktestConfig:
    kw.setdefault("initial_cash", 1000.0)
    return BacktestConfig(**kw)


# ---------------------------------------------------------------- scalar rules
def test_path_takes_the_adverse_extreme_first_when_holding():
    assert candle_path(100, 110, 90, 105, 1) == (100, 90, 110, 105)
    assert candle_path(100, 110, 90, 105, -1) == (100, 110, 90, 105)
    # flat: the extreme nearer the open first
    assert candle_path(100, 103, 90, 95, 0) == (100, 103, 90, 95)
    assert candle_path(100, 110, 98, 105, 0) == (100, 98, 110, 105)


def test_scalar_limit_buy_fills_at_limit_or_better_open():
    assert evaluate_order("limit", 1, 100, 101, 98, 100, price=99)[0] == 99
    assert evaluate_order("limit", 1, 97, 101, 96, 100, price=99)[0] == 97  # gapped below: open
    assert evaluate_order("limit", 1, 100, 101, 99.5, 100, price=99)[0] is None


def test_scalar_stop_sell_fills_at_stop_or_worse_open():
    assert evaluate_order("stop_market", -1, 100, 101, 94, 99, stop_price=95)[0] == 95
    assert evaluate_order("stop_market", -1, 93, 94, 90, 92, stop_price=95)[0] == 93
    assert evaluate_order("stop_market", 1, 100, 106, 99, 101, stop_price=105)[0] == 105
    assert evaluate_order("stop_market", 1, 107, 108, 106, 107, stop_price=105)[0] == 107


def test_scalar_take_profit_sell_and_buy():
    assert evaluate_order("take_profit", -1, 100, 106, 99, 101, price=105)[0] == 105
    assert evaluate_order("take_profit", -1, 108, 109, 107, 108, price=105)[0] == 108
    assert evaluate_order("take_profit", 1, 100, 101, 94, 99, price=95)[0] == 95


def test_scalar_trailing_sell_triggers_on_the_way_down_from_the_high():
    # peak 100 -> level 90; path O(100) L(99) H(120) C(107): level after the high is 108 >= 107
    price, peak = evaluate_order(
        "trailing_stop", -1, 100, 120, 99, 107, trail=0.1, extreme=100, position_side=1
    )
    assert price == pytest.approx(108.0)
    assert peak == 120
    # not triggered: the peak is carried to the next candle
    price, peak = evaluate_order(
        "trailing_stop", -1, 100, 110, 101, 105, trail=0.1, extreme=100, position_side=1
    )
    assert price is None and peak == 110


def test_scalar_stop_limit_marketable_and_resting():
    # sell stop 95 limit 94: triggers at 95, marketable (95 >= 94) -> 95
    assert (
        evaluate_order("stop_limit", -1, 100, 101, 93, 96, stop_price=95, price=94, position_side=1)[0] == 95
    )
    # gap to 92 below the limit: rests as a sell limit at 94, the later high 96 fills it at 94
    assert evaluate_order("stop_limit", -1, 92, 96, 91, 95, stop_price=95, price=94, position_side=1)[0] == 94
    # gap below and never back above the limit: no fill
    assert (
        evaluate_order("stop_limit", -1, 92, 93, 91, 92, stop_price=95, price=94, position_side=1)[0] is None
    )


def test_partial_fill_cap():
    assert partial_fill_size(10, 100, 0.05) == 5
    assert partial_fill_size(10, 100, None) == 10


# ------------------------------------------------------------ through the broker
ROWS = [
    (100, 101, 99, 100),
    (102, 103, 101, 102),
    (104, 105, 103, 104),
    (104, 105, 103, 104),
]


def test_market_order_from_a_signal_fills_at_the_next_open():
    s = Script({0: lambda st: st.buy(), 1: lambda st: st.close_position()})
    r = run_backtest(candles(ROWS), s, cfg())
    (t,) = r.trades
    assert t.entry_price == 102 and t.exit_price == 104
    assert t.size == pytest.approx(1000 / 102)
    assert t.pnl == pytest.approx(1000 / 102 * 2)
    assert t.exit_reason == "signal"
    assert t.entry_time == r.equity_timestamps[1] and t.exit_time == r.equity_timestamps[2]
    # nothing happened at candle 0's close: the account only changes from candle 1
    assert r.equity[0] == 1000 and r.equity[1] == pytest.approx(1000)


def test_limit_buy_fills_at_limit_price_and_at_open_on_a_gap():
    rows = [(100, 101, 99, 100), (100, 101, 98, 100), (100, 100, 100, 100)]
    s = Script({0: lambda st: st.buy_limit(2, 99)})
    run_backtest(candles(rows), s, cfg(close_at_end=False))
    assert s.filled[0].filled_price == 99 and s.seen[1][2] == 2
    rows = [(100, 101, 99, 100), (97, 101, 96, 100), (100, 100, 100, 100)]
    s = Script({0: lambda st: st.buy_limit(2, 99)})
    run_backtest(candles(rows), s, cfg(close_at_end=False))
    assert s.filled[0].filled_price == 97


def test_order_placed_on_a_candle_cannot_fill_within_that_candle():
    rows = [(100, 101, 90, 100), (100, 101, 99.5, 100)]
    s = Script({0: lambda st: st.buy_limit(1, 95)})
    run_backtest(candles(rows), s, cfg())
    assert s.filled == []


def test_stop_loss_fills_at_stop_and_at_open_when_candle_gaps_down():
    rows = [
        (100, 100, 100, 100),
        (100, 101, 99, 100),
        (100, 101, 94, 99),
        (99, 99, 99, 99),
    ]
    s = Script({0: lambda st: st.buy(1), 1: lambda st: st.stop_market(None, 95)})
    r = run_backtest(candles(rows), s, cfg())
    assert r.trades[0].exit_price == 95 and r.trades[0].exit_reason == "stop_loss"
    rows[2] = (93, 94, 90, 92)
    s = Script({0: lambda st: st.buy(1), 1: lambda st: st.stop_market(None, 95)})
    r = run_backtest(candles(rows), s, cfg())
    assert r.trades[0].exit_price == 93


def test_take_profit_fills_at_target_and_at_better_open_on_gap_up():
    rows = [
        (100, 100, 100, 100),
        (100, 101, 99, 100),
        (100, 106, 99, 101),
        (101, 101, 101, 101),
    ]
    s = Script({0: lambda st: st.buy(1), 1: lambda st: st.take_profit(None, 105)})
    r = run_backtest(candles(rows), s, cfg())
    assert r.trades[0].exit_price == 105 and r.trades[0].exit_reason == "take_profit"
    rows[2] = (107, 108, 106, 107)
    s = Script({0: lambda st: st.buy(1), 1: lambda st: st.take_profit(None, 105)})
    r = run_backtest(candles(rows), s, cfg())
    assert r.trades[0].exit_price == 107


def test_stop_first_when_stop_and_target_touched_in_one_candle_long_and_short():
    rows = [(100, 100, 100, 100), (100, 106, 94, 100), (100, 100, 100, 100)]
    s = Script({0: lambda st: st.buy(1, stop_loss=0.05, take_profit=0.05)})
    r = run_backtest(candles(rows), s, cfg())
    assert r.trades[0].exit_reason == "stop_loss" and r.trades[0].exit_price == pytest.approx(95)
    s = Script({0: lambda st: st.sell(1, stop_loss=0.05, take_profit=0.05)})
    r = run_backtest(candles(rows), s, cfg(market_type="futures", allow_short=True))
    assert r.trades[0].side == "short"
    assert r.trades[0].exit_reason == "stop_loss" and r.trades[0].exit_price == pytest.approx(105)


def test_bracket_is_active_in_the_entry_candle():
    rows = [(100, 100, 100, 100), (100, 101, 97, 100), (100, 100, 100, 100)]
    s = Script({0: lambda st: st.buy(1, stop_loss=0.02)})
    r = run_backtest(candles(rows), s, cfg())
    assert r.trades[0].exit_price == pytest.approx(98) and r.trades[0].entry_time == r.equity_timestamps[1]


def test_trailing_stop_follows_the_peak_across_candles_and_inside_one():
    rows = [
        (100, 100, 100, 100),
        (100, 110, 100, 105),
        (105, 106, 98, 100),
        (100, 100, 100, 100),
    ]
    s = Script({0: lambda st: st.buy(1, trailing_stop=0.1)})
    r = run_backtest(candles(rows), s, cfg())
    assert r.trades[0].exit_reason == "trailing_stop"
    assert r.trades[0].exit_price == pytest.approx(99.0)  # peak 110 from candle 1
    assert r.trades[0].exit_time == r.equity_timestamps[2]
    rows = [(100, 100, 100, 100), (100, 120, 99, 107), (107, 107, 107, 107)]
    s = Script({0: lambda st: st.buy(1, trailing_stop=0.1)})
    r = run_backtest(candles(rows), s, cfg())
    assert r.trades[0].exit_price == pytest.approx(108.0)
    assert r.trades[0].exit_time == r.equity_timestamps[1]


def test_stop_limit_through_broker_rests_after_a_gap():
    rows = [
        (100, 100, 100, 100),
        (100, 100, 100, 100),
        (92, 96, 91, 95),
        (95, 95, 95, 95),
    ]
    s = Script({0: lambda st: st.buy(1), 1: lambda st: st.stop_limit(None, 95, 94)})
    r = run_backtest(candles(rows), s, cfg())
    assert r.trades[0].exit_price == 94 and r.trades[0].exit_reason == "stop_loss"


def test_buy_stop_entry_breakout():
    rows = [
        (100, 100, 100, 100),
        (100, 104, 99, 103),
        (103, 106, 102, 105),
        (105, 105, 105, 105),
    ]
    s = Script({0: lambda st: st.stop_market(2, 105, side="buy")})
    r = run_backtest(candles(rows), s, cfg())
    assert r.trades[0].entry_price == 105 and r.trades[0].size == 2
    assert r.trades[0].exit_reason == "end_of_data" and r.trades[0].exit_price == 105


def test_cancelled_order_does_not_fill():
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 90, 100)]
    s = Script({0: lambda st: st.buy_limit(1, 95), 1: lambda st: st.cancel(st.ids[0])})
    run_backtest(candles(rows), s, cfg())
    assert s.filled == []


def test_reduce_only_exits_are_cancelled_when_the_position_closes():
    rows = [
        (100, 100, 100, 100),
        (100, 100, 100, 100),
        (100, 100, 100, 100),
        (100, 120, 80, 100),
    ]
    s = Script(
        {
            0: lambda st: st.buy(1),
            1: lambda st: (
                st.stop_market(None, 90),
                st.take_profit(None, 110),
                st.close_position(),
            ),
        }
    )
    r = run_backtest(candles(rows), s, cfg())
    assert len(r.trades) == 1 and r.trades[0].exit_reason == "signal"
    assert s.seen[-1][2] == 0 and s.get_open_orders() == []
