"""Fees, slippage and position sizing with hand-computed numbers."""

from __future__ import annotations

import pytest

from apps.backtests.engine import BacktestConfig, ConfigError, run_backtest
from apps.backtests.engine.fees import FeeModel
from apps.backtests.engine.slippage import SlippageModel

from .engine_support import DAY, Script, candles

FLAT = [(100, 100, 100, 100)] * 4


def run(actions, rows=FLAT, **kw):
    kw.setdefault("initial_cash", 1000.0)
    s = Script(actions)
    return run_backtest(candles(rows), s, BacktestConfig(**kw)), s


# ------------------------------------------------------------------------ fees
def test_percentage_fee_is_paid_on_both_fills_and_100pct_sizing_leaves_room_for_it():
    r, s = run({0: lambda st: st.buy(), 1: lambda st: st.close_position()}, fee=0.001)
    t = r.trades[0]
    qty = 1000 / (100 * 1.001)
    assert t.size == pytest.approx(qty, rel=1e-12)
    assert s.seen[1][1] == pytest.approx(0.0, abs=1e-9)  # all cash used, none overdrawn
    assert t.fees == pytest.approx(qty * 100 * 0.001 * 2)
    assert t.pnl == pytest.approx(-t.fees)
    assert r.metrics["total_fees"] == pytest.approx(t.fees)
    assert r.equity[-1] == pytest.approx(1000 - t.fees)


def test_fixed_fee_per_fill():
    r, _ = run(
        {0: lambda st: st.buy(), 1: lambda st: st.close_position()},
        fee={"type": "fixed", "amount": 1.0},
    )
    t = r.trades[0]
    assert t.size == pytest.approx(9.99)
    assert t.fees == 2.0
    assert r.equity[-1] == pytest.approx(998.0)


def test_maker_fee_for_resting_limit_and_taker_for_market():
    fee = {"type": "percentage", "maker": 0.0002, "taker": 0.001}
    rows = [(100, 100, 100, 100), (100, 100, 99, 100), (100, 100, 100, 100)]
    r, _ = run(
        {0: lambda st: st.buy_limit(1, 99.5), 1: lambda st: st.close_position()},
        rows=rows,
        fee=fee,
    )
    assert r.trades[0].fees == pytest.approx(99.5 * 0.0002 + 100 * 0.001)


def test_tiered_fee_drops_after_volume_threshold_and_the_window_expires():
    model = FeeModel(
        {
            "type": "tiered",
            "tiers": [
                {"volume": 0, "maker": 0.001, "taker": 0.002},
                {"volume": 1000, "maker": 0.0005, "taker": 0.001},
            ],
            "window_days": 1,
        }
    )
    assert model.charge(600, False, 0) == pytest.approx(1.2)
    assert model.charge(600, False, 1) == pytest.approx(1.2)  # 600 traded before: still tier 0
    assert model.charge(100, True, 2) == pytest.approx(0.05)  # 1200 in the window: tier 1 maker
    assert model.rate(False, DAY - 1) == 0.001  # 1300 traded in the trailing day
    assert model.rate(False, DAY) == 0.002  # the first fill left the window: 700, tier 0 again


def test_fee_spec_errors_are_reported_per_field():
    with pytest.raises(ConfigError) as exc:
        BacktestConfig(
            fee={
                "type": "tiered",
                "tiers": [{"volume": 10, "maker": 0.1, "taker": 0.1}],
            }
        )
    assert "fee.tiers" in exc.value.fields
    with pytest.raises(ConfigError):
        BacktestConfig(fee={"type": "bogus"})


# -------------------------------------------------------------------- slippage
def test_percentage_and_fixed_slippage_move_the_price_against_the_trader():
    r, _ = run({0: lambda st: st.buy(1), 1: lambda st: st.close_position()}, slippage=0.01)
    assert r.trades[0].entry_price == pytest.approx(101) and r.trades[0].exit_price == pytest.approx(99)
    r, _ = run(
        {0: lambda st: st.buy(1), 1: lambda st: st.close_position()},
        slippage={"type": "fixed", "amount": 0.5},
    )
    assert r.trades[0].entry_price == 100.5 and r.trades[0].exit_price == 99.5


def test_volume_slippage_scales_with_order_size_over_candle_volume():
    model = SlippageModel({"type": "volume", "impact": 0.1, "base": 0.001, "max": 0.05})
    assert model.apply(100, 1, size=2, candle_volume=100) == pytest.approx(100 * (1 + 0.001 + 0.1 * 2 / 100))
    assert model.apply(100, -1, size=2, candle_volume=0) == pytest.approx(95)  # no volume: the cap


def test_random_slippage_is_seeded_and_bounded():
    a = SlippageModel({"type": "random", "max": 0.01, "seed": 3})
    b = SlippageModel({"type": "random", "max": 0.01, "seed": 3})
    xs = [a.apply(100, 1) for _ in range(50)]
    assert xs == [b.apply(100, 1) for _ in range(50)]
    assert all(100 <= x <= 101 for x in xs) and len(set(xs)) == 50


def test_limit_orders_get_no_slippage():
    rows = [(100, 100, 100, 100), (100, 100, 98, 100), (100, 100, 100, 100)]
    r, _ = run({0: lambda st: st.buy_limit(1, 99)}, rows=rows, slippage=0.01)
    assert r.trades[0].entry_price == 99


def test_stop_fill_gets_slippage():
    rows = [
        (100, 100, 100, 100),
        (100, 100, 100, 100),
        (100, 100, 94, 99),
        (99, 99, 99, 99),
    ]
    r, _ = run(
        {0: lambda st: st.buy(1), 1: lambda st: st.stop_market(None, 95)},
        rows=rows,
        slippage=0.01,
    )
    assert r.trades[0].exit_price == pytest.approx(95 * 0.99)


# ---------------------------------------------------------------------- sizing
@pytest.mark.parametrize(
    ("sizing", "expected"),
    [
        ({"type": "fixed_quantity", "value": 2.5}, 2.5),
        ({"type": "fixed_quote", "value": 250}, 2.5),
        ({"type": "percent_equity", "value": 0.5}, 5.0),
        ({"type": "percent_equity", "value": 1.0}, 10.0),
    ],
)
def test_sizing_models(sizing, expected):
    r, _ = run({0: lambda st: st.buy()}, sizing=sizing)
    assert r.trades[0].size == pytest.approx(expected)


def test_risk_per_trade_sizes_from_the_stop_distance():
    # equity 1000, risk 1% = 10 quote, stop 5% below 100 -> 5 per unit -> 2 units
    r, _ = run(
        {0: lambda st: st.buy(stop_loss=0.05)},
        sizing={"type": "risk_per_trade", "value": 0.01},
    )
    assert r.trades[0].size == pytest.approx(2.0)


def test_risk_per_trade_without_a_stop_is_a_clear_error():
    with pytest.raises(Exception, match="stop loss"):
        run({0: lambda st: st.buy()}, sizing={"type": "risk_per_trade", "value": 0.01})


def test_size_is_capped_by_what_the_balance_can_pay():
    r, s = run(
        {0: lambda st: st.buy()},
        sizing={"type": "fixed_quantity", "value": 50},
        fee=0.001,
    )
    assert r.trades[0].size == pytest.approx(1000 / (100 * 1.001), rel=1e-9)
    assert min(x[1] for x in s.seen) >= 0


def test_leveraged_percent_equity_commits_equity_as_margin():
    r, _ = run({0: lambda st: st.buy()}, market_type="futures", leverage=5)
    assert r.trades[0].size == pytest.approx(50.0)  # 1000 margin * 5 / 100
    assert r.trades[0].leverage == 5


def test_spot_cannot_sell_what_it_does_not_hold():
    r, s = run({0: lambda st: st.sell(1)})
    assert r.trades == [] and r.info["rejected_orders"] == 1 and s.seen[-1][2] == 0
