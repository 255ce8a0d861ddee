"""The paper exchange and the backtest agree: same order, same real candles -> same fill.

Each case runs the order twice on the same Binance BTC/USDT 1h candles: through
the backtest engine (an event strategy placing it from ``on_data``) and through
the paper gateway replaying those candles. The fill candle, the fill price and
the fee must match (prices exactly up to float->Decimal conversion).
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
