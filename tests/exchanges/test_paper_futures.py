"""The paper exchange's futures, trailing stops, OCO pairs and price-tick matching, on real BTC/USDT 1h candles.

Expected balances are computed here in Decimal from the candle arrays, with the
same float->Decimal conversion the gateway uses (``repr``); liquidation prices
come from the backtest engine itself (a run of the same position), so the
paper exchange is checked against the engine, not against a copy of its formula.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from apps.backtests.engine import BacktestConfig, run_backtest
from apps.backtests.engine.tiers import LeverageTiers, resolve_tiers
from apps.core.money import quantize_amount as q
from apps.exchanges import services
from apps.exchanges.gateway import InvalidOrder, OrderRequest
from apps.exchanges.gateway.paper import PaperGateway
from apps.exchanges.gateway.prices import ReplayPriceSource
from apps.exchanges.models import PaperOrder, PaperPosition, PaperTrade
from tests.backtests.engine_support import Script
from tests.factories import PaperAccountFactory

pytestmark = pytest.mark.django_db

SYM = "BTC/USDT:USDT"
SLIP = 0.0005
MAKER = Decimal("0.001")
TAKER = Decimal("0.002")
FEE = {"type": "percentage", "maker": 0.001, "taker": 0.002}
EIGHT_HOURS = 8 * 3_600_000


def d(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def first(mask: np.ndarray, start: int) -> int:
    hits = np.flatnonzero(mask[start:])
    assert len(hits), "the chosen level is never reached in the window"
    return start + int(hits[0])


@pytest.fixture
def futures_account(user):
    return PaperAccountFactory(
        user=user,
        market_type="futures",
        maker_fee=MAKER,
        taker_fee=TAKER,
        slippage={"type": "percentage", "value": SLIP},
        max_volume_fraction=None,
        initial_balances={"USDT": "100000"},
    )


@pytest.fixture
def freplay(btc_1h) -> ReplayPriceSource:
    return ReplayPriceSource({SYM: btc_1h}, cursor=1)


@pytest.fixture
def fpaper(futures_account, freplay) -> PaperGateway:
    return PaperGateway(futures_account, prices=freplay, markets={})


def market(gateway, side: str, amount: str, **kw):
    return gateway.create_order(OrderRequest(SYM, side, "market", Decimal(amount), **kw))


def usdt(gateway):
    return gateway.fetch_balance().get("USDT")


class LiqScript(Script):
    """A scripted strategy that also records the engine's liquidation price after each candle."""

    def __init__(self, actions):
        super().__init__(actions)
        self.liq: list[float | None] = []

    def on_data(self, candle) -> None:
        super().on_data(candle)
        self.liq.append(self.get_liquidation_price())


def engine_run(candles, actions, *, leverage: float, mode: str, cash: float, funding=None):
    script = LiqScript(actions)
    config = BacktestConfig(
        initial_cash=cash,
        fee=FEE,
        slippage={"type": "percentage", "value": SLIP},
        market_type="futures",
        leverage=leverage,
        margin_mode=mode,
        allow_short=True,
        symbol=SYM,
        funding_rates=funding,
        close_at_end=False,
    )
    result = run_backtest(candles, script, config)
    return script, result


# ------------------------------------------------------------------ P&L
@pytest.mark.postgres_decimals
@pytest.mark.parametrize("side", ["buy", "sell"])
def test_futures_long_and_short_pnl_to_the_smallest_unit(fpaper, freplay, btc_1h, side):
    sign = 1 if side == "buy" else -1
    assert fpaper.set_leverage(SYM, Decimal("10")) == Decimal("10")
    freplay.cursor = 10
    opened = market(fpaper, side, "0.5")
    entry = d(btc_1h.open[10] * (1 + sign * SLIP))
    assert opened.status == "filled" and opened.average == entry
    fee_open = q(q(Decimal("0.5") * entry) * TAKER)
    margin = q(Decimal("0.5") * entry / 10)
    balance = usdt(fpaper)
    assert balance.used == margin and balance.free == Decimal("100000") - margin - fee_open

    freplay.cursor = 30
    (position,) = fpaper.fetch_positions()
    mark = d(btc_1h.open[30])
    assert position.side == ("long" if sign > 0 else "short")
    assert position.contracts == Decimal("0.5") and position.entry_price == entry
    assert position.unrealized_pnl == q(sign * Decimal("0.5") * (mark - entry))
    assert position.leverage == Decimal("10") and position.margin_mode == "isolated"

    market(fpaper, "sell" if sign > 0 else "buy", "0.5", reduce_only=True)
    exit_price = d(btc_1h.open[30] * (1 - sign * SLIP))
    pnl = q(sign * Decimal("0.5") * (exit_price - entry))
    fee_close = q(q(Decimal("0.5") * exit_price) * TAKER)
    balance = usdt(fpaper)
    assert balance.used == 0
    assert balance.free == Decimal("100000") + pnl - fee_open - fee_close
    assert fpaper.fetch_positions() == []
    row = PaperPosition.objects.get(account=fpaper.account, symbol=SYM)
    assert row.realized_pnl == pnl and row.size == 0 and row.margin == 0
    assert PaperTrade.objects.filter(account=fpaper.account).order_by("id").last().realized_pnl == pnl


def test_futures_symbols_leverage_and_margin_mode_are_checked(fpaper, freplay, btc_1h):
    with pytest.raises(InvalidOrder) as exc:
        fpaper.create_order(OrderRequest("BTC/USDT", "buy", "market", Decimal("0.1")))
    assert exc.value.fields == {"symbol": "format BASE/QUOTE:SETTLE"}
    with pytest.raises(InvalidOrder) as exc:
        fpaper.set_leverage(SYM, Decimal("126"))  # BTC's first bracket allows 125x
    assert "leverage" in exc.value.fields
    fpaper.set_leverage(SYM, Decimal("125"))
    freplay.cursor = 10
    with pytest.raises(InvalidOrder) as exc:  # 125x allows at most 50,000 USDT of position (tier 1)
        market(fpaper, "buy", "2")
    assert exc.value.fields == {"amount": "exceeds the maximum position at this leverage"}
    with pytest.raises(InvalidOrder):
        fpaper.set_margin_mode(SYM, "portfolio")
    assert fpaper.set_margin_mode(SYM, "cross") == "cross"
    market(fpaper, "buy", "0.5")
    with pytest.raises(InvalidOrder):
        fpaper.set_leverage(SYM, Decimal("10"))  # a position is open
    with pytest.raises(InvalidOrder):
        fpaper.set_margin_mode(SYM, "isolated")
    (position,) = fpaper.fetch_positions()
    assert position.margin_mode == "cross" and position.leverage == Decimal("125")


# ----------------------------------------------------------- liquidation
@pytest.mark.parametrize(
    ("mode", "amount", "leverage", "cash"),
    [
        ("isolated", "0.5", "50", "100000"),  # first bracket
        ("isolated", "3", "20", "100000"),  # second bracket (50k-250k notional)
        ("cross", "3", "20", "20000"),
        ("cross", "0.5", "50", "3000"),
    ],
)
def test_liquidation_price_is_the_engines_for_the_same_tier(
    fpaper, freplay, btc_1h, mode, amount, leverage, cash
):
    services.paper_account_set_balances(account=fpaper.account, balances={"USDT": cash})
    fpaper.set_leverage(SYM, Decimal(leverage))
    fpaper.set_margin_mode(SYM, mode)
    freplay.cursor = 10
    market(fpaper, "buy", amount)
    script, _ = engine_run(
        btc_1h.slice(0, 12),
        {9: lambda s: s.buy(float(amount), float(leverage))},
        leverage=float(leverage),
        mode=mode,
        cash=float(cash),
    )
    (position,) = fpaper.fetch_positions()
    assert script.seen[10][2] == pytest.approx(float(amount))
    # The engine averages in float (entry*qty/qty); the paper entry is the exact fill price.
    assert float(position.entry_price) == pytest.approx(script.seen[10][3], rel=1e-12)
    assert script.liq[10] is not None
    assert float(position.liquidation_price) == pytest.approx(script.liq[10], rel=1e-12)


@pytest.mark.parametrize("mode", ["isolated", "cross"])
def test_liquidation_loses_the_whole_margin(fpaper, freplay, btc_1h, mode):
    services.paper_account_set_balances(account=fpaper.account, balances={"USDT": "3000"})
    fpaper.set_leverage(SYM, Decimal("50"))
    fpaper.set_margin_mode(SYM, mode)
    freplay.cursor = 10
    market(fpaper, "buy", "1")
    row = PaperPosition.objects.get(account=fpaper.account, symbol=SYM)
    before = usdt(fpaper)
    collateral = row.margin if mode == "isolated" else before.free + row.margin
    (position,) = fpaper.fetch_positions()
    liq = float(position.liquidation_price)
    tiers = resolve_tiers(None, SYM, 0.005)
    assert liq == pytest.approx(tiers.liquidation_price(1, float(row.entry_price), 1.0, float(collateral)))
    j = first(btc_1h.low <= liq, 10)
    freplay.cursor = j  # candle j is forming: its open has not reached the liquidation price
    assert float(btc_1h.open[j]) > liq
    assert fpaper.fetch_positions() != []
    freplay.cursor = j + 1
    assert fpaper.fetch_positions() == []
    after = usdt(fpaper)
    assert after.used == 0
    # Isolated: the margin is gone, the rest of the balance stays; cross: the whole balance is gone.
    assert after.free == (before.free if mode == "isolated" else 0)
    trade = PaperTrade.objects.get(account=fpaper.account, liquidation=True)
    bankrupt = LeverageTiers.bankruptcy_price(1, float(row.entry_price), 1.0, float(collateral))
    assert trade.timestamp == int(btc_1h.timestamp[j]) and trade.fee == 0
    # approx: SQLite stores these columns as floats; on PostgreSQL they agree to the last place.
    assert float(trade.price) == pytest.approx(bankrupt, rel=1e-15)
    assert float(trade.realized_pnl) == pytest.approx(-float(collateral), rel=1e-15)
    assert trade.order.reason == "liquidation"


def test_cross_margin_liquidates_later_than_isolated(fpaper, freplay):
    services.paper_account_set_balances(account=fpaper.account, balances={"USDT": "20000"})
    fpaper.set_leverage(SYM, Decimal("20"))
    freplay.cursor = 10
    market(fpaper, "buy", "1")
    (isolated,) = fpaper.fetch_positions()
    market(fpaper, "sell", "1", reduce_only=True)
    fpaper.set_margin_mode(SYM, "cross")
    market(fpaper, "buy", "1")
    (cross,) = fpaper.fetch_positions()
    # Cross margin backs the position with the free balance too: the long survives a deeper fall.
    assert cross.liquidation_price < isolated.liquidation_price


# --------------------------------------------------------------- funding
@pytest.mark.postgres_decimals
@pytest.mark.parametrize("side", ["buy", "sell"])
def test_funding_is_charged_at_each_funding_time_from_the_accounts_rate(fpaper, freplay, btc_1h, side):
    sign = 1 if side == "buy" else -1
    fpaper.account.funding_rate = Decimal("0.0001")
    fpaper.account.save()
    fpaper.set_leverage(SYM, Decimal("10"))
    freplay.cursor = 10
    market(fpaper, side, "0.5")
    margin = PaperPosition.objects.get(account=fpaper.account, symbol=SYM).margin
    freplay.cursor = 60
    fpaper.fetch_positions()
    ts = btc_1h.timestamp
    expected = Decimal(0)
    funding_time = (int(ts[10]) // EIGHT_HOURS + 1) * EIGHT_HOURS
    while funding_time <= int(ts[59]):
        j = first(ts >= funding_time, 0)
        expected += q(sign * Decimal("0.5") * d(btc_1h.open[j]) * Decimal("0.0001"))
        funding_time += EIGHT_HOURS
    assert expected != 0
    row = PaperPosition.objects.get(account=fpaper.account, symbol=SYM)
    assert row.funding == expected  # longs pay a positive rate, shorts receive it
    assert row.margin == margin - expected  # isolated: funding moves the position's margin
    assert usdt(fpaper).used == margin - expected
    fpaper.fetch_positions()  # a second pass over the same candles charges nothing more
    assert PaperPosition.objects.get(pk=row.pk).funding == expected


@pytest.mark.postgres_decimals
def test_funding_follows_the_stored_history_in_cross_margin(futures_account, btc_1h):
    ts = btc_1h.timestamp
    t1 = (int(ts[12]) // EIGHT_HOURS + 1) * EIGHT_HOURS
    history = [[int(ts[5]), 0.0005], [t1, 0.0003], [t1 + EIGHT_HOURS, -0.0002]]
    replay = ReplayPriceSource({SYM: btc_1h}, cursor=10, funding={SYM: history})
    paper = PaperGateway(futures_account, prices=replay, markets={})
    paper.set_margin_mode(SYM, "cross")
    market(paper, "buy", "0.5")
    free = usdt(paper).free
    replay.cursor = 60
    paper.fetch_positions()
    # The event before the position opened is not its; each later one at the first candle at/after it.
    expected = sum(q(Decimal("0.5") * d(btc_1h.open[first(ts >= t, 0)]) * d(rate)) for t, rate in history[1:])
    row = PaperPosition.objects.get(account=futures_account, symbol=SYM)
    assert row.funding == expected
    assert usdt(paper).free == free - expected  # cross: paid from the balance


# ------------------------------------------------------- trailing stops
def trailing_fill(candles, start: int, peak: float, trail: float) -> tuple[int, float]:
    """Walk a long's path (open, low, high, close) from ``start``: (candle, fill before slippage)."""
    for j in range(start, len(candles.open)):
        path = (candles.open[j], candles.low[j], candles.high[j], candles.close[j])
        prev = path[0]
        for k, point in enumerate(path):
            level = peak * (1 - trail)
            if k == 0 and point <= level:
                return j, float(point)
            if k and point < prev and point <= level:
                return j, level
            peak = max(peak, point)
            prev = point
    raise AssertionError("the trailing stop never triggers in the window")


def test_trailing_stop_follows_the_best_price_since_placement(paper, replay, btc_1h):
    replay.cursor = 10
    paper.create_order(OrderRequest("BTC/USDT", "buy", "market", Decimal("1")))
    replay.cursor = 11
    trailing = paper.create_order(
        OrderRequest("BTC/USDT", "sell", "trailing_stop", Decimal("1"), trailing_percent=Decimal("2"))
    )
    assert trailing.status == "open"
    j, level = trailing_fill(btc_1h, 11, float(btc_1h.open[11]), 0.02)
    replay.cursor = j  # candle j still forming
    assert paper.fetch_order(trailing.id, "BTC/USDT").status == "open"
    peak = max(btc_1h.high[11:j].max(), btc_1h.open[11], btc_1h.open[j])  # the tick at open[j] counts
    assert PaperOrder.objects.get(pk=trailing.id).extreme == d(peak)
    replay.cursor = j + 1
    done = paper.fetch_order(trailing.id, "BTC/USDT")
    assert done.status == "filled" and done.average == d(level * (1 - SLIP))
    (trade,) = [t for t in paper.fetch_my_trades("BTC/USDT") if t.order_id == trailing.id]
    assert trade.timestamp == int(btc_1h.timestamp[j]) and trade.maker is False


# ------------------------------------------------------------------ OCO
def oco(paper, btc_1h, k):
    tp = round(float(btc_1h.open[k]) * 1.03, 2)
    stop = round(float(btc_1h.open[k]) * 0.97, 2)
    orders = paper.create_oco(
        OrderRequest("BTC/USDT", "sell", "limit", Decimal("1"), price=Decimal(repr(tp))),
        OrderRequest("BTC/USDT", "sell", "stop_market", Decimal("1"), stop_price=Decimal(repr(stop))),
    )
    return orders, tp, stop


def test_oco_fill_of_one_order_cancels_the_other(paper, replay, btc_1h):
    assert paper.supports_oco
    replay.cursor = 10
    paper.create_order(OrderRequest("BTC/USDT", "buy", "market", Decimal("1")))
    replay.cursor = 11
    (take, stop_order), tp, stop = oco(paper, btc_1h, 11)
    btc = paper.fetch_balance().get("BTC")
    assert btc.used == Decimal("1") and btc.free == 0  # one reservation for the pair
    j = first((btc_1h.high >= tp) | (btc_1h.low <= stop), 11)
    replay.cursor = j + 1
    take, stop_order = (paper.fetch_order(o.id, "BTC/USDT") for o in (take, stop_order))
    # Holding a long the path visits the low first: the stop wins a candle that touches both.
    stop_first = btc_1h.low[j] <= stop
    filled, other = (stop_order, take) if stop_first else (take, stop_order)
    assert filled.status == "filled" and filled.filled == Decimal("1")
    assert other.status == "cancelled" and other.reason == "OCO: the other order filled"
    btc = paper.fetch_balance().get("BTC")
    assert btc.used == 0 and btc.free == 0
    assert PaperOrder.objects.filter(account=paper.account, status="open").count() == 0


def test_cancelling_one_order_of_an_oco_pair_cancels_both(paper, replay, btc_1h):
    replay.cursor = 10
    paper.create_order(OrderRequest("BTC/USDT", "buy", "market", Decimal("1")))
    (take, stop_order), _, _ = oco(paper, btc_1h, 10)
    paper.cancel_order(stop_order.id, "BTC/USDT")
    assert paper.fetch_order(take.id, "BTC/USDT").status == "cancelled"
    btc = paper.fetch_balance().get("BTC")
    assert btc.used == 0 and btc.free == Decimal("1")


def test_oco_orders_must_pair_up(paper, replay):
    with pytest.raises(InvalidOrder) as exc:
        paper.create_oco(
            OrderRequest("BTC/USDT", "sell", "limit", Decimal("1"), price=Decimal("50000")),
            OrderRequest("BTC/USDT", "buy", "stop_market", Decimal("2"), stop_price=Decimal("40000")),
        )
    assert set(exc.value.fields) == {"side", "amount"}


# ------------------------------------------------------------ price ticks
def test_a_price_tick_fills_resting_orders_between_candles(paper, replay, btc_1h):
    replay.cursor = 10
    now = int(btc_1h.timestamp[10])
    limit = round(float(btc_1h.open[10]) * 0.99, 2)
    order = paper.create_order(
        OrderRequest("BTC/USDT", "buy", "limit", Decimal("1"), price=Decimal(repr(limit)))
    )
    assert paper.on_price("BTC/USDT", Decimal(repr(limit)) + 1, now + 60_000) == 0
    tick = Decimal(repr(limit)) - 5
    assert paper.on_price("BTC/USDT", tick, now + 120_000) == 1
    assert paper.on_price("BTC/USDT", tick, now + 120_000) == 0  # idempotent
    (trade,) = paper.fetch_my_trades("BTC/USDT")
    # A single price point is a gap: the limit fills at the (better) tick price, as maker.
    assert trade.order_id == order.id and trade.price == tick and trade.maker is True
    assert trade.timestamp == now + 120_000
    stop = paper.create_order(
        OrderRequest("BTC/USDT", "sell", "stop_market", Decimal("1"), stop_price=tick - 100)
    )
    assert paper.on_price("BTC/USDT", tick - 150, now + 180_000) == 1
    done = paper.fetch_order(stop.id, "BTC/USDT")
    assert done.status == "filled" and done.average == d(float(tick - 150) * (1 - SLIP))


def test_a_price_tick_liquidates_a_futures_position(fpaper, freplay, btc_1h):
    fpaper.set_leverage(SYM, Decimal("50"))
    freplay.cursor = 10
    market(fpaper, "sell", "0.5")
    (position,) = fpaper.fetch_positions()
    tick = position.liquidation_price + 1
    assert fpaper.on_price(SYM, tick, int(btc_1h.timestamp[10]) + 60_000) == 1
    assert fpaper.fetch_positions() == []
    trade = PaperTrade.objects.get(account=fpaper.account, liquidation=True)
    assert trade.side == "buy" and trade.amount == Decimal("0.5")
    assert usdt(fpaper).used == 0


# --------------------------------------------------------------- locking
@pytest.mark.django_db(transaction=True)
def test_concurrent_matching_passes_fill_and_charge_once(user, btc_1h):
    """Four workers match one account at once: the account's row lock serializes them, nothing doubles."""
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks (select_for_update) need PostgreSQL; SQLite serializes every writer")
    from apps.exchanges.models import PaperAccount

    account = PaperAccountFactory(
        user=user,
        market_type="futures",
        funding_rate=Decimal("0.0001"),
        maker_fee=MAKER,
        taker_fee=TAKER,
        max_volume_fraction=None,
        initial_balances={"USDT": "100000"},
    )
    replay = ReplayPriceSource({SYM: btc_1h}, cursor=10)
    gateway = PaperGateway(account, prices=replay, markets={})
    market(gateway, "buy", "0.5")
    target = round(float(btc_1h.open[10]) * 1.02, 2)
    take = gateway.create_order(
        OrderRequest(SYM, "sell", "limit", Decimal("0.5"), price=Decimal(repr(target)), reduce_only=True)
    )
    j = first(btc_1h.high >= target, 10)
    replay.cursor = j + 1
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            fresh = PaperAccount.objects.get(pk=account.pk)
            results.append(PaperGateway(fresh, prices=replay, markets={}).match())
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sum(results) == 1  # one pass filled the take-profit; the others found nothing left
    assert PaperTrade.objects.filter(order_id=take.id).count() == 1
    row = PaperPosition.objects.get(account=account, symbol=SYM)
    assert row.size == 0
    expected = Decimal(0)
    ts = btc_1h.timestamp
    funding_time = (int(ts[10]) // EIGHT_HOURS + 1) * EIGHT_HOURS
    while funding_time <= int(ts[j]):
        expected += q(Decimal("0.5") * d(btc_1h.open[first(ts >= funding_time, 0)]) * Decimal("0.0001"))
        funding_time += EIGHT_HOURS
    assert row.funding == expected  # each funding event charged once


# ----------------------------------------------------- through the orders service
def test_the_orders_service_trades_paper_futures_and_syncs_the_position(
    user, futures_account, btc_1h, django_capture_on_commit_callbacks
):
    from apps.orders import services as orders
    from apps.orders.models import Order, Position

    replay = ReplayPriceSource({SYM: btc_1h}, cursor=10)
    gateway = PaperGateway(futures_account, prices=replay, markets={})
    gateway.set_leverage(SYM, Decimal("10"))
    with django_capture_on_commit_callbacks(execute=True):
        entry = orders.order_place(
            owner=user, account=futures_account, symbol=SYM, side="sell", type="market", amount=Decimal("0.5"),
            gateway=gateway,
        )  # fmt: skip
    target = Decimal(repr(round(float(btc_1h.open[10]) * 0.97, 2)))
    with django_capture_on_commit_callbacks(execute=True):
        exit_order = orders.order_place(
            owner=user, account=futures_account, symbol=SYM, side="buy", type="take_profit", amount=Decimal("0.5"),
            stop_price=target, reduce_only=True, gateway=gateway,
        )  # fmt: skip
    assert Order.objects.get(pk=entry.pk).status == "filled"
    with django_capture_on_commit_callbacks(execute=True):
        orders.order_sync(account=futures_account, gateway=gateway)
    position = Position.objects.get(paper_account=futures_account, symbol=SYM)
    (remote,) = gateway.fetch_positions()
    assert position.side == "short" and position.size == Decimal("0.5")
    assert position.leverage == Decimal("10") and position.margin_mode == "isolated"
    # approx: SQLite stores the column as a float; on PostgreSQL the two are equal.
    assert float(position.liquidation_price) == pytest.approx(float(remote.liquidation_price), rel=1e-15)
    j = first(btc_1h.low <= float(target), 11)
    replay.cursor = j + 1
    with django_capture_on_commit_callbacks(execute=True):
        orders.order_sync(account=futures_account, gateway=gateway)
    assert Order.objects.get(pk=exit_order.pk).status == "filled"
    assert gateway.fetch_positions() == []


def test_a_paper_liquidation_flattens_the_orders_position(
    user, futures_account, btc_1h, django_capture_on_commit_callbacks
):
    from apps.orders import services as orders
    from apps.orders.models import Position

    replay = ReplayPriceSource({SYM: btc_1h}, cursor=10)
    gateway = PaperGateway(futures_account, prices=replay, markets={})
    gateway.set_leverage(SYM, Decimal("50"))
    with django_capture_on_commit_callbacks(execute=True):
        orders.order_place(
            owner=user, account=futures_account, symbol=SYM, side="buy", type="market", amount=Decimal("0.5"),
            gateway=gateway,
        )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        orders.order_sync(account=futures_account, gateway=gateway)
    position = Position.objects.get(paper_account=futures_account, symbol=SYM)
    assert position.size == Decimal("0.5") and position.liquidation_price is not None
    assert gateway.on_price(SYM, position.liquidation_price - 1, int(btc_1h.timestamp[10]) + 60_000) == 1
    with django_capture_on_commit_callbacks(execute=True):
        orders.order_sync(account=futures_account, gateway=gateway)
    position.refresh_from_db()
    assert position.side == "flat" and position.size == 0 and position.liquidation_price is None


def test_the_matching_job_skips_a_replays_account_with_a_futures_position(user, monkeypatch):
    """A bot replay's account fills on the replay's clock only: the beat's matching pass, which
    also visits accounts holding futures positions without orders, must leave it alone."""
    live = PaperAccountFactory(user=user, market_type="futures")
    replaying = PaperAccountFactory(user=user, market_type="futures", replay_id=424242)
    for account in (live, replaying):
        PaperPosition.objects.create(
            account=account, symbol=SYM, quote="USDT", size=Decimal("0.5"), entry_price=Decimal("100")
        )
    matched = []
    monkeypatch.setattr(PaperGateway, "match", lambda self: matched.append(self.account.pk) or 0)
    services.paper_orders_process()
    assert matched == [live.pk]
