"""Leverage tiers: Binance's brackets, liquidation prices, leverage caps, liquidation outcomes, mark price."""

from __future__ import annotations

import numpy as np
import pytest

from apps.backtests.engine import BacktestConfig, Candles, ConfigError, run_backtest
from apps.backtests.engine.tiers import LeverageTiers, default_tiers

from .engine_support import T0, Script, candles

# Binance USD-M BTCUSDT brackets (GET /fapi/v1/leverageBracket), typed in here on purpose
# so the test does not read the engine's copy: (floor, cap, maintenance rate, max leverage, cum).
BTC = [
    (0, 50_000, 0.004, 125, 0),
    (50_000, 250_000, 0.005, 100, 50),
    (250_000, 3_000_000, 0.01, 50, 1_300),
    (3_000_000, 20_000_000, 0.025, 20, 46_300),
    (20_000_000, 40_000_000, 0.05, 10, 546_300),
    (40_000_000, 100_000_000, 0.10, 5, 2_546_300),
]
AT = (30_000, 30_000, 30_000, 30_000)


def maintenance(notional: float) -> float:
    for floor, cap, mmr, _, cum in BTC:
        if floor <= notional <= cap:
            return notional * mmr - cum
    raise AssertionError("notional beyond the test's table")


def expected_liquidation(side: int, entry: float, qty: float, leverage: float) -> float:
    """Bisection on the exchange's condition margin + pnl == maintenance margin (isolated)."""
    wallet = qty * entry / leverage
    lo, hi = (1e-6, entry) if side > 0 else (entry, entry * 1.3)

    def excess(price: float) -> float:
        return wallet + side * qty * (price - entry) - maintenance(qty * price)

    for _ in range(200):
        mid = (lo + hi) / 2
        # long: excess grows with the price; short: it shrinks
        if (excess(mid) > 0) == (side > 0):
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def btc(**kw) -> BacktestConfig:
    kw.setdefault("initial_cash", 1e9)
    kw.setdefault("market_type", "futures")
    kw.setdefault("symbol", "BTC/USDT")
    kw.setdefault("allow_short", True)
    return BacktestConfig(**kw)


def liquidation_after_order(config: BacktestConfig, side: int, amount: float, leverage: float):
    def place(st):
        return st.buy(amount, leverage=leverage) if side > 0 else st.sell(amount, leverage=leverage)

    s = Script({0: place, 1: lambda st: (st.get_liquidation_price(), st.get_entry_price())})
    r = run_backtest(candles([AT, AT, AT]), s, config)
    return s.ids[1][0], r


# ------------------------------------------------------------------ the numbers
def test_ten_btc_at_10x_long_from_30000_liquidates_at_binances_27141_41():
    liq, _ = liquidation_after_order(btc(), 1, 10, 10)
    assert round(liq, 2) == 27141.41


def test_per_order_leverage_cannot_bypass_the_configs_limits():
    """Issue 10: leverage=125 on an order under a 10x/1% config was "liquidated" for a profit."""
    config = BacktestConfig(
        market_type="futures", leverage=10, maintenance_margin_rate=0.01, allow_short=True
    )
    for side in (1, -1):
        liq, r = liquidation_after_order(config, side, 1.0, 125)
        (t,) = r.trades
        assert t.exit_reason == "end_of_data"  # flat candles never liquidate
        assert t.leverage == 50  # a 1% maintenance rate allows 1/(2*1%) = 50x, not 125x
        assert (liq - 30_000) * side < 0  # the liquidation price is on the losing side of the entry


@pytest.mark.parametrize("mmr", [0.0, 0.004, 0.01, 0.05, 0.2])
@pytest.mark.parametrize("leverage", [1, 2, 10, 50, 100, 125])
@pytest.mark.parametrize("side", [1, -1])
def test_a_liquidation_is_never_a_gain(mmr, leverage, side):
    rows = [AT, AT, (30_000, 300_000, 1, 30_000), AT]  # a candle that reaches both extremes
    config = BacktestConfig(market_type="futures", maintenance_margin_rate=mmr, allow_short=True, fee=0.0005)
    s = Script(
        {0: lambda st: st.buy(1.0, leverage=leverage) if side > 0 else st.sell(1.0, leverage=leverage)}
    )
    r = run_backtest(candles(rows), s, config)
    for t in r.trades:
        if t.exit_reason == "liquidation":
            assert t.pnl < 0
            assert (t.exit_price - t.entry_price) * side <= 0


# ------------------------------------------------------------------ brackets
@pytest.mark.parametrize(
    ("leverage", "amount"),
    [
        (100, 1),  # 30k notional: bracket 1
        (100, 5),  # 150k: bracket 2
        (50, 20),  # 600k: bracket 3
        (20, 200),  # 6M: bracket 4
        (10, 10),  # 300k: bracket 3
        (10, 1000),  # 30M: bracket 5
    ],
)
@pytest.mark.parametrize("side", [1, -1])
def test_liquidation_prices_match_the_exchange_formula_across_brackets(leverage, amount, side):
    liq, r = liquidation_after_order(btc(), side, amount, leverage)
    assert r.trades[0].leverage == leverage
    assert liq == pytest.approx(expected_liquidation(side, 30_000, amount, leverage), rel=1e-9)


def test_maximum_leverage_shrinks_as_the_position_grows():
    # 100 BTC at 30000 is 3M notional: the top of bracket 3, still 50x
    _, r = liquidation_after_order(btc(), 1, 100, 50)
    assert r.trades[0].leverage == 50
    # 200 BTC is 6M: bracket 4 allows 20x, so a 50x order opens at 20x
    liq, r = liquidation_after_order(btc(), 1, 200, 50)
    assert r.trades[0].leverage == 20
    assert liq == pytest.approx(expected_liquidation(1, 30_000, 200, 20), rel=1e-9)
    # adding to a 50x position stops where 50x ends (3M notional)
    s = Script({0: lambda st: st.buy(90, leverage=50), 1: lambda st: st.buy(50)})
    r = run_backtest(candles([AT, AT, AT, AT]), s, btc())
    assert r.trades[0].size == pytest.approx(100)


def test_shipped_tiers_match_binance_and_their_maintenance_amounts_are_continuous():
    rows = default_tiers("BTCUSDT")
    assert [
        (r["minNotional"], r["maxNotional"], r["maintenanceMarginRate"], r["maxLeverage"]) for r in rows[:6]
    ] == [(float(a), float(b), c, float(d)) for a, b, c, d, _ in BTC]
    assert [float(r["info"]["cum"]) for r in rows[:6]] == [float(row[4]) for row in BTC]
    for symbol in ("BTC/USDT", "ETH/USDT:USDT"):
        tiers = LeverageTiers.from_ccxt(default_tiers(symbol))
        for k in range(1, len(tiers.caps)):
            edge = tiers.floors[k]
            below = edge * tiers.mmr[k - 1] - tiers.cum[k - 1]
            above = edge * tiers.mmr[k] - tiers.cum[k]
            assert above == pytest.approx(below), (symbol, k)
            assert tiers.mmr[k] * tiers.max_leverage[k] < 1


def test_ccxt_tiers_without_cum_get_it_derived_and_bad_tiers_are_refused():
    tiers = [
        {
            "tier": 1,
            "minNotional": 0,
            "maxNotional": 50_000,
            "maintenanceMarginRate": 0.004,
            "maxLeverage": 125,
        },
        {
            "tier": 2,
            "minNotional": 50_000,
            "maxNotional": 250_000,
            "maintenanceMarginRate": 0.005,
            "maxLeverage": 100,
        },
    ]
    config = BacktestConfig(market_type="futures", leverage=20, leverage_tiers=tiers)
    assert config.tiers().cum == [0.0, 50.0]
    assert BacktestConfig.from_dict(config.to_dict()).tiers().cum == [0.0, 50.0]
    with pytest.raises(ConfigError) as exc:
        BacktestConfig(market_type="futures", leverage_tiers=[{"tier": 1}])
    assert "leverage_tiers" in exc.value.fields
    with pytest.raises(ConfigError) as exc:
        BacktestConfig(market_type="futures", leverage=126, symbol="BTC/USDT")
    assert "leverage" in exc.value.fields
    with pytest.raises(ConfigError) as exc:
        BacktestConfig(market_type="futures", leverage=101, symbol="ETH/USDT")  # ETH's top is 100x
    assert "leverage" in exc.value.fields


# ------------------------------------------------------------------ liquidation outcome and gaps
def test_liquidation_through_a_gap_fills_at_the_open_and_loses_exactly_the_margin():
    # 1 BTC at 10x from 30000: bracket 1 (0.4%), liquidation at 27108.43; the next candle opens at 25000
    rows = [AT, AT, (25_000, 25_500, 24_000, 25_200), AT]
    s = Script({0: lambda st: st.buy(1, leverage=10), 1: lambda st: st.get_liquidation_price()})
    r = run_backtest(candles(rows), s, btc(initial_cash=10_000))
    assert round(s.ids[1], 2) == 27108.43
    (t,) = r.trades
    assert t.exit_reason == "liquidation" and t.exit_price == 25_000
    assert s.seen[2][1] == pytest.approx(10_000 - 3_000)  # the wallet loses the 3000 margin, no more


def test_liquidation_between_the_liquidation_and_bankruptcy_prices_closes_at_bankruptcy():
    rows = [AT, AT, (30_000, 30_000, 27_050, 27_500), AT]  # touches 27108.43, stays above 27000
    s = Script({0: lambda st: st.buy(1, leverage=10)})
    r = run_backtest(candles(rows), s, btc(initial_cash=10_000))
    (t,) = r.trades
    assert t.exit_reason == "liquidation" and t.exit_price == pytest.approx(27_000)
    assert t.pnl == pytest.approx(-3_000)


def test_stop_and_take_profit_gapped_through_fill_at_the_open():
    down = [AT, AT, (27_000, 27_500, 26_000, 27_200), AT]
    s = Script({0: lambda st: st.buy(1, leverage=2, stop_loss=0.05)})
    (t,) = run_backtest(candles(down), s, btc(initial_cash=100_000)).trades
    assert t.exit_reason == "stop_loss" and t.exit_price == 27_000  # not the 28500 stop
    up = [AT, AT, (33_000, 33_500, 32_800, 33_200), AT]
    s = Script({0: lambda st: st.buy(1, leverage=2, take_profit=0.05)})
    (t,) = run_backtest(candles(up), s, btc(initial_cash=100_000)).trades
    assert t.exit_reason == "take_profit" and t.exit_price == 33_000  # not the 31500 target


# ------------------------------------------------------------------ mark price
def with_mark(last: list[tuple[float, ...]], mark: list[tuple[float, ...]]) -> Candles:
    data = candles(last)
    return data.with_mark(candles(mark))


def test_liquidation_follows_the_mark_price_when_mark_candles_are_given():
    last = [AT, AT, (30_000, 30_000, 27_500, 29_000), AT]  # the last price stays above 27108.43
    mark = [AT, AT, (30_000, 30_000, 27_050, 29_000), AT]  # the mark price does not
    s = Script({0: lambda st: st.buy(1, leverage=10)})
    marked = run_backtest(with_mark(last, mark), s, btc(initial_cash=10_000))
    assert marked.trades[0].exit_reason == "liquidation"
    assert marked.info["price_source"] == "mark"
    plain = run_backtest(
        candles(last), Script({0: lambda st: st.buy(1, leverage=10)}), btc(initial_cash=10_000)
    )
    assert plain.trades[0].exit_reason == "end_of_data"
    assert plain.info["price_source"] == "last" and "last" in plain.info["price_source_note"]


def test_unrealized_pnl_uses_the_mark_close_and_missing_mark_candles_fall_back_to_last():
    last = [AT, AT, (30_000, 30_500, 30_000, 30_500), AT]
    mark = [AT, AT, (30_000, 30_200, 30_000, 30_200)]  # no mark candle for the last one
    s = Script({0: lambda st: st.buy(1, leverage=2)})
    r = run_backtest(with_mark(last, mark), s, btc(initial_cash=100_000, close_at_end=False))
    assert s.seen[2][0] == pytest.approx(100_000 + 200)  # marked at 30200, not the last 30500
    assert r.equity[2] == pytest.approx(100_000 + 200)
    assert r.equity[3] == pytest.approx(100_000)  # last price used where the mark candle is missing
    assert r.info["mark_missing_candles"] == 1


def test_mark_columns_in_a_dataframe_become_mark_candles():
    frame = candles([AT, AT]).to_frame()
    for name in ("open", "high", "low", "close"):
        frame[f"mark_{name}"] = frame[name] + 1
    data = Candles.from_frame(frame)
    assert data.mark is not None and np.allclose(data.mark.close, 30_001)
    assert data.slice(1, 2).mark is not None


# ------------------------------------------------------------------ funding
def test_funding_none_constant_or_series():
    rows = [AT] * 10
    hour = 3_600_000
    start = T0  # a UTC midnight: a funding time
    data = candles(rows, step=hour, start=start)
    paid = {}
    for label, spec in (("none", None), ("constant", 0.0001), ("series", [[start + 8 * hour, 0.0003]])):
        s = Script({0: lambda st: st.buy(1, leverage=2)})
        r = run_backtest(data, s, btc(initial_cash=100_000, funding_rates=spec))
        paid[label] = r.metrics["total_funding"]
    assert paid["none"] == 0
    assert paid["constant"] == pytest.approx(30_000 * 0.0001)  # 08:00 only: the position opens at 01:00
    assert paid["series"] == pytest.approx(30_000 * 0.0003)
