"""Futures: liquidation prices (isolated/cross, long/short), liquidation fills, funding, leverage."""

from __future__ import annotations

import math

import pytest

from apps.backtests.engine import BacktestConfig, ConfigError, run_backtest
from apps.backtests.engine.margin import funding_schedule
from apps.backtests.engine.tiers import LeverageTiers

from .engine_support import MINUTE, T0, Script, candles

FLAT = (100, 100, 100, 100)


def fut(**kw) -> BacktestConfig:
    kw.setdefault("initial_cash", 1000.0)
    kw.setdefault("market_type", "futures")
    return BacktestConfig(**kw)


# ------------------------------------------------------------- liquidation price
def flat(mmr: float) -> LeverageTiers:
    return LeverageTiers.flat(mmr)


def test_isolated_liquidation_price_long_and_short():
    # 10x at 100: margin 10 per unit; mmr 0.5%
    assert flat(0.005).liquidation_price(1, 100, 1, 10) == pytest.approx(90 / 0.995)
    assert flat(0.005).liquidation_price(-1, 100, 1, 10) == pytest.approx(110 / 1.005)
    # textbook form entry*(1 -/+ 1/L)/(1 -/+ mmr)
    assert flat(0.01).liquidation_price(1, 200, 3, 3 * 200 / 20) == pytest.approx(200 * (1 - 1 / 20) / 0.99)


def test_cross_liquidation_price_uses_the_wallet():
    # 50 units at 100 (5000 notional), wallet 1000: 20 per unit of cushion
    assert flat(0.005).liquidation_price(1, 100, 50, 1000) == pytest.approx(80 / 0.995)
    assert flat(0.005).liquidation_price(-1, 100, 50, 1000) == pytest.approx(120 / 1.005)
    # a long whose wallet covers a fall to zero cannot be liquidated
    assert flat(0.005).liquidation_price(1, 100, 1, 1000) is None


def test_margin_ratio():
    assert flat(0.005).margin_ratio(0, 10) == 0.0
    assert flat(0.005).margin_ratio(95, 5) == pytest.approx(0.005 * 95 / 5)
    assert flat(0.005).margin_ratio(80, -10) == math.inf


# ---------------------------------------------------------- liquidation in a run
def test_isolated_long_liquidation_closes_at_the_bankruptcy_price_and_loses_the_whole_margin():
    rows = [FLAT, FLAT, (100, 100, 85, 88), FLAT]
    fee = 0.0004
    s = Script({0: lambda st: st.buy(), 1: lambda st: st.get_liquidation_price()})
    r = run_backtest(candles(rows), s, fut(leverage=10, fee=fee))
    (t,) = r.trades
    notional = 1000 * 10 / (1 + fee * 10)
    qty = notional / 100
    margin = notional / 10
    assert s.ids[1] == pytest.approx((100 - 10) / 0.995)  # triggers at the liquidation price ...
    assert s.seen[1][3] == 100 and t.size == pytest.approx(qty)
    # ... and the exchange takes the position over at the bankruptcy price (margin balance 0)
    assert t.exit_reason == "liquidation" and t.exit_price == pytest.approx(100 - margin / qty)
    expected_cash = 1000 - notional * fee - margin  # 100% of equity at 10x: nothing is left
    assert s.seen[2][1] == pytest.approx(expected_cash, abs=1e-6)
    assert r.equity[2] == pytest.approx(expected_cash, abs=1e-6)
    assert r.metrics["liquidations"] == 1
    assert t.fees == pytest.approx(notional * fee)  # no fee on top: the rest went to the insurance fund
    assert t.pnl == pytest.approx(-margin - notional * fee)


def test_short_liquidated_on_a_gap_fills_at_the_open_and_still_loses_only_its_margin():
    rows = [
        FLAT,
        FLAT,
        (150, 160, 140, 150),
        FLAT,
    ]  # gaps far through the liquidation and bankruptcy prices
    fee = 0.001
    s = Script({0: lambda st: st.sell()})
    r = run_backtest(candles(rows), s, fut(leverage=20, allow_short=True, fee=fee))
    t = r.trades[0]
    assert t.side == "short" and t.exit_reason == "liquidation"
    assert t.exit_price == 150
    notional = 1000 * 20 / (1 + fee * 20)
    assert s.seen[2][1] == pytest.approx(1000 - notional * fee - notional / 20, abs=1e-6)
    assert min(x[1] for x in s.seen) >= 0 and r.equity.min() >= 0


def test_cross_margin_long_survives_where_isolated_is_liquidated():
    rows = [FLAT, FLAT, (100, 100, 89, 95), FLAT]
    buy_quarter = {0: lambda st: st.buy(25)}  # 2500 notional, 10x: 250 isolated margin
    iso = run_backtest(candles(rows), Script(buy_quarter), fut(leverage=10))
    cross = run_backtest(candles(rows), Script(buy_quarter), fut(leverage=10, margin_mode="cross"))
    assert iso.trades[0].exit_reason == "liquidation"
    assert iso.trades[0].exit_price == pytest.approx(100 - 10)  # bankruptcy: 250 margin on 25 units
    assert cross.trades[0].exit_reason == "end_of_data"
    # cross liquidation price uses the 1000 wallet: (100 - 40) / 0.995
    s = Script(
        {
            0: lambda st: st.buy(25),
            1: lambda st: st.ids.__setitem__("liq", st.get_liquidation_price()),
        }
    )
    run_backtest(candles(rows), s, fut(leverage=10, margin_mode="cross"))
    assert s.ids["liq"] == pytest.approx(60 / 0.995)


def test_stop_above_the_liquidation_price_fills_first():
    rows = [FLAT, FLAT, (100, 100, 85, 88), FLAT]
    s = Script({0: lambda st: st.buy(stop_loss=0.05)})
    r = run_backtest(candles(rows), s, fut(leverage=10))
    assert r.trades[0].exit_reason == "stop_loss" and r.trades[0].exit_price == pytest.approx(95)


def test_spot_has_no_leverage_and_no_short():
    with pytest.raises(ConfigError) as exc:
        BacktestConfig(leverage=3)
    assert "leverage" in exc.value.fields
    with pytest.raises(ConfigError):
        BacktestConfig(allow_short=True)
    with pytest.raises(ConfigError):
        fut(leverage=126)
    with pytest.raises(ConfigError):
        fut(leverage=125, maintenance_margin_rate=0.01)  # 1/125 = 0.8% < mmr: instant liquidation


def test_margin_ratio_through_the_strategy_api():
    rows = [FLAT, FLAT, (100, 100, 95, 95), FLAT]
    s = Script({0: lambda st: st.buy(), 2: lambda st: st.get_margin_ratio()})
    run_backtest(candles(rows), s, fut(leverage=10))
    # 100 units at 100 with 1000 margin, marked at 95: balance 500, maintenance 0.5% of 9500
    assert s.seen[2][0] == pytest.approx(500)
    assert s.ids[2] == pytest.approx(0.005 * 9500 / 500)


# ---------------------------------------------------------------------- funding
def test_funding_schedule_maps_times_to_candle_opens_and_sums_collisions():
    ts = T0 + MINUTE * __import__("numpy").array([0, 1, 5, 6])
    idx, rates = funding_schedule([[T0, 0.001], [T0 + 2 * MINUTE, 0.002], [T0 + 3 * MINUTE, 0.003]], ts)
    assert idx == [0, 2] and rates == pytest.approx([0.001, 0.005])
    idx, rates = funding_schedule(0.0001, T0 + 3_600_000 * __import__("numpy").arange(24))
    assert idx == [0, 8, 16] and rates == [0.0001] * 3


def test_long_pays_positive_funding_at_the_candle_open_price():
    rows = [FLAT, FLAT, (110, 110, 110, 110), (110, 110, 110, 110)]
    funding = [[T0 + 2 * MINUTE, 0.001]]
    s = Script({0: lambda st: st.buy(5)})
    r = run_backtest(candles(rows), s, fut(funding_rates=funding))
    assert s.seen[2][1] == pytest.approx(1000 - 5 * 110 * 0.001)
    t = r.trades[0]
    assert t.funding == pytest.approx(0.55)
    assert t.pnl == pytest.approx(5 * 10 - 0.55)
    assert r.metrics["total_funding"] == pytest.approx(0.55)
    # the short side receives it
    s = Script({0: lambda st: st.sell(5)})
    run_backtest(candles(rows), s, fut(funding_rates=funding, allow_short=True))
    assert s.seen[2][1] == pytest.approx(1000 + 0.55)


def test_funding_needs_futures():
    with pytest.raises(ConfigError):
        BacktestConfig(funding_rates=0.0001)
