"""The paper exchange and the backtest agree: same order, same real candles -> same fill.

Each case runs the order twice on the same Binance BTC/USDT 1h candles: through
the backtest engine (an event strategy placing it from ``on_data``) and through
the paper gateway replaying those candles. The fill candle, the fill price and
the fee must match (prices exactly up to float->Decimal conversion).

The futures cases open a leveraged long or short through both, hold it while
funding is charged, and close it (or see it liquidated): the fill times and
prices, the funding paid and the final wallet must match the engine's.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.backtests.engine import BacktestConfig, run_backtest
from apps.exchanges import services
from apps.exchanges.gateway import OrderRequest
from apps.exchanges.gateway.paper import PaperGateway
from apps.exchanges.gateway.prices import ReplayPriceSource
from tests.backtests.engine_support import Script

pytestmark = pytest.mark.django_db

FEE = {"type": "percentage", "maker": 0.001, "taker": 0.002}
SLIPPAGE = {"type": "percentage", "value": 0.0005}
AMOUNT = 0.5

# (order type, side, level as a multiple of the placing candle's close[, limit multiple])
CASES = [
    ("market", "buy", None, None),
    ("limit", "buy", 0.98, None),
    ("limit", "buy", 1.01, None),  # marketable: fills at the next open
    ("stop_market", "buy", 1.02, None),
    ("stop_limit", "buy", 1.015, 1.02),
    ("stop_limit", "buy", 1.015, 1.016),
    ("limit", "sell", 1.02, None),
    ("stop_market", "sell", 0.98, None),
    ("take_profit", "sell", 1.03, None),
    ("stop_limit", "sell", 0.985, 0.98),
    ("market", "sell", None, None),
]


def engine_fill(candles, k: int, kind: str, side: str, level: float | None, limit: float | None):
    """Place the order from ``on_data(k)`` in a backtest; return the engine's fill info (or None)."""
    holds = side == "sell"
    actions = {}
    if holds:
        actions[k - 1] = lambda s: s.buy(AMOUNT)  # fills at open[k]: the position the sell closes

    def place(s):
        sign = None if holds else side  # None = reduce-only exit of the held position
        if kind == "market":
            return s.buy(AMOUNT) if side == "buy" else s.sell(AMOUNT)
        if kind == "limit":
            return s.buy_limit(AMOUNT, level) if side == "buy" else s.sell_limit(AMOUNT, level)
        if kind == "stop_market":
            return s.stop_market(AMOUNT, level, side=sign)
        if kind == "take_profit":
            return s.take_profit(AMOUNT, level, side=sign)
        return s.stop_limit(AMOUNT, level, limit, side=sign)

    actions[k] = place
    script = Script(actions)
    run_backtest(
        candles,
        script,
        BacktestConfig(initial_cash=100_000.0, fee=FEE, slippage=SLIPPAGE, close_at_end=False),
    )
    fills = script.filled[1:] if holds else script.filled
    return fills[0] if fills else None


def paper_fill(account, candles, k: int, kind: str, side: str, level: float | None, limit: float | None):
    replay = ReplayPriceSource({"BTC/USDT": candles}, cursor=k)
    gateway = PaperGateway(account, prices=replay, markets={})
    if side == "sell":
        gateway.create_order(OrderRequest("BTC/USDT", "buy", "market", Decimal(repr(AMOUNT))))
    replay.cursor = k + 1  # the engine's order placed on candle k acts from candle k+1
    stop = level if kind in ("stop_market", "stop_limit") else None
    price = limit if kind == "stop_limit" else (None if kind in ("market", "stop_market") else level)
    order = gateway.create_order(
        OrderRequest(
            "BTC/USDT",
            side,
            kind,
            Decimal(repr(AMOUNT)),
            price=None if price is None else Decimal(repr(price)),
            stop_price=None if stop is None else Decimal(repr(stop)),
        )
    )
    replay.cursor = replay.length - 1
    trades = [t for t in gateway.fetch_my_trades("BTC/USDT") if t.order_id == order.id]
    return trades[0] if trades else None


def run_case(account, candles, k, kind, side, mult, limit_mult):
    ref = float(candles.close[k])
    level = None if mult is None else round(ref * mult, 2)
    limit = None if limit_mult is None else round(ref * limit_mult, 2)
    services.paper_account_set_balances(account=account, balances={"USDT": "100000"})
    expected = engine_fill(candles, k, kind, side, level, limit)
    got = paper_fill(account, candles, k, kind, side, level, limit)
    if expected is None:
        assert got is None, f"paper filled {kind} {side} at {got} but the backtest did not"
        return
    assert got is not None, f"the backtest filled {kind} {side} at {expected.filled_price} but paper did not"
    assert got.timestamp == expected.fill_time
    assert float(got.price) == pytest.approx(expected.filled_price, rel=1e-12, abs=0)
    assert got.amount == Decimal(repr(AMOUNT))
    taker_types = {"market", "stop_market", "take_profit"}
    if kind in taker_types:
        assert got.maker is False


@pytest.fixture
def account(user):
    account = services.paper_account_get_or_create(user=user)
    account.maker_fee, account.taker_fee = Decimal("0.001"), Decimal("0.002")
    account.slippage = SLIPPAGE
    account.max_volume_fraction = None
    account.save()
    return account


@pytest.mark.parametrize(("kind", "side", "mult", "limit_mult"), CASES)
@pytest.mark.parametrize("k", [20, 150, 333])
def test_paper_fill_matches_the_backtest_fill(account, btc_1h, k, kind, side, mult, limit_mult):
    run_case(account, btc_1h, k, kind, side, mult, limit_mult)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    case=st.sampled_from(CASES),
    k=st.integers(min_value=5, max_value=560),
    jitter=st.floats(min_value=-0.015, max_value=0.015),
)
def test_paper_and_backtest_agree_on_random_orders_over_real_candles(account, btc_1h, case, k, jitter):
    kind, side, mult, limit_mult = case
    mult = None if mult is None else mult + jitter
    limit_mult = None if limit_mult is None else limit_mult + jitter
    run_case(account, btc_1h, k, kind, side, mult, limit_mult)


def test_fees_agree_with_the_backtest_fee_model(account, btc_1h):
    """Fee = notional x rate, taker for market/stop/take-profit and maker for limits, as in the engine."""
    from apps.backtests.engine.fees import FeeModel

    model = FeeModel(FEE)
    replay = ReplayPriceSource({"BTC/USDT": btc_1h}, cursor=100)
    services.paper_account_set_balances(account=account, balances={"USDT": "100000"})
    gateway = PaperGateway(account, prices=replay, markets={})
    order = gateway.create_order(OrderRequest("BTC/USDT", "buy", "market", Decimal("0.5")))
    engine_fee = model.charge(float(order.cost), False, 0)
    assert float(order.fee) == pytest.approx(engine_fee, rel=1e-12)
    limit = round(float(btc_1h.open[100]) * 0.995, 2)
    order = gateway.create_order(
        OrderRequest("BTC/USDT", "buy", "limit", Decimal("0.5"), price=Decimal(repr(limit)))
    )
    replay.cursor = replay.length - 1
    done = gateway.fetch_order(order.id, "BTC/USDT")
    assert done.status == "filled"
    assert float(done.fee) == pytest.approx(model.charge(float(done.cost), True, 0), rel=1e-12)


# ----------------------------------------------------------------- futures
FUTURES = "BTC/USDT:USDT"
# (side, leverage, margin mode, candles held): the 50x ones hold long enough that the
# real candles liquidate some of them (longs from k=20, 150, 333), which both must do alike.
FUTURES_CASES = [
    ("buy", 10, "isolated", 40),
    ("sell", 10, "isolated", 40),
    ("buy", 5, "cross", 60),
    ("buy", 50, "isolated", 200),
    ("sell", 50, "isolated", 200),
    ("sell", 20, "cross", 200),
]


def engine_futures(candles, k, side, leverage, mode, hold, rate):
    script = Script(
        {
            k: lambda s: s.buy(AMOUNT, leverage) if side == "buy" else s.sell(AMOUNT, leverage),
            k + hold: lambda s: s.close_position(),
        }
    )
    result = run_backtest(
        candles,
        script,
        BacktestConfig(
            initial_cash=100_000.0,
            fee=FEE,
            slippage=SLIPPAGE,
            market_type="futures",
            leverage=float(leverage),
            margin_mode=mode,
            allow_short=True,
            symbol=FUTURES,
            funding_rates=rate,
            close_at_end=False,
        ),
    )
    return script, result.trades


@pytest.mark.parametrize(("side", "leverage", "mode", "hold"), FUTURES_CASES)
@pytest.mark.parametrize("k", [20, 150, 333])
def test_paper_futures_agree_with_the_backtest(user, btc_1h, k, side, leverage, mode, hold):
    """Open at the next open, hold ``hold`` candles paying funding, close (or be liquidated): same money."""
    rate = 0.0001
    account = services.paper_account_get_or_create(user=user)
    account.market_type = "futures"
    account.funding_rate = Decimal(repr(rate))
    account.maker_fee, account.taker_fee = Decimal("0.001"), Decimal("0.002")
    account.slippage = SLIPPAGE
    account.max_volume_fraction = None
    account.save()
    services.paper_account_set_balances(account=account, balances={"USDT": "100000"})
    script, trades = engine_futures(btc_1h, k, side, leverage, mode, hold, rate)

    replay = ReplayPriceSource({FUTURES: btc_1h}, cursor=k + 1)
    paper = PaperGateway(account, prices=replay, markets={})
    paper.set_leverage(FUTURES, Decimal(leverage))
    paper.set_margin_mode(FUTURES, mode)
    paper.create_order(OrderRequest(FUTURES, side, "market", Decimal(repr(AMOUNT))))
    end = k + hold + 1
    for cursor in range(k + 2, end + 1, 3):  # reads every few candles, as the sync beat job would do
        replay.cursor = cursor
        paper.fetch_positions()
    replay.cursor = end
    if paper.fetch_positions():
        paper.create_order(
            OrderRequest(
                FUTURES, "sell" if side == "buy" else "buy", "market", Decimal(repr(AMOUNT)), reduce_only=True
            )
        )
    (trade,) = trades
    fills = paper.fetch_my_trades(FUTURES)
    assert [t.timestamp for t in fills] == [trade.entry_time, trade.exit_time]
    assert float(fills[0].price) == pytest.approx(trade.entry_price, rel=1e-12)
    assert float(fills[1].price) == pytest.approx(trade.exit_price, rel=1e-12)
    position = account.positions.get(symbol=FUTURES)
    assert float(position.funding) == pytest.approx(trade.funding, rel=1e-9, abs=1e-9)
    wallet = paper.fetch_balance().get("USDT").total
    assert float(wallet) == pytest.approx(script.seen[end][1], rel=1e-12)
    if trade.exit_reason == "liquidation":
        liquidation = account.trades.get(liquidation=True)
        assert liquidation.fee == 0 and liquidation.timestamp == trade.exit_time
