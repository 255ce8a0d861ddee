"""order_place / order_cancel / order_sync on the paper exchange, replaying real BTC/USDT candles."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.core.errors import Conflict, NotFound
from apps.exchanges.gateway import InsufficientFunds, InvalidOrder
from apps.exchanges.models import PaperOrder
from apps.orders import lifecycle, services
from apps.orders.models import Fill, Order, Position
from tests.factories import OrderFactory, PaperAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def place(user, paper_account, paper, django_capture_on_commit_callbacks):
    def _place(**kw):
        kw.setdefault("symbol", "BTC/USDT")
        kw.setdefault("side", "buy")
        kw.setdefault("type", "market")
        kw.setdefault("amount", Decimal("0.01"))
        with django_capture_on_commit_callbacks(execute=True):
            order = services.order_place(owner=user, account=paper_account, gateway=paper, **kw)
        order.refresh_from_db()
        return order

    return _place


def sync(paper_account, paper, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return services.order_sync(account=paper_account, gateway=paper)


def test_every_bad_field_is_reported_at_once(place):
    with pytest.raises(InvalidOrder) as err:
        place(type="limit", amount=Decimal("0.000015"), price=Decimal("30000.001"))
    assert set(err.value.fields) == {"amount", "price"}
    assert "0.00001" in err.value.fields["amount"]
    assert Order.objects.count() == 0


def test_amount_below_market_minimum_cost_is_refused(place):
    with pytest.raises(InvalidOrder) as err:
        place(type="limit", amount=Decimal("0.0001"), price=Decimal("30000"))  # 3 USDT < 5
    assert "minimum" in err.value.fields["amount"]


def test_missing_price_and_stop_price_are_named(place):
    with pytest.raises(InvalidOrder) as err:
        place(type="stop_limit", side="sell", amount=Decimal("0.01"))
    assert set(err.value.fields) == {"price", "stop_price"}


def test_order_beyond_the_balance_is_refused_and_nothing_is_written(place):
    with pytest.raises(InsufficientFunds):
        place(amount=Decimal("10"))  # ~ 400k USDT
    assert Order.objects.count() == 0
    assert PaperOrder.objects.count() == 0


def test_same_client_order_id_returns_the_first_order_and_sends_once(place):
    first = place(type="limit", price=Decimal("20000"), client_order_id="my-id-1")
    again = place(type="limit", price=Decimal("20000"), client_order_id="my-id-1")
    assert again.pk == first.pk
    assert Order.objects.count() == 1
    assert PaperOrder.objects.filter(client_order_id="my-id-1").count() == 1


def test_another_users_account_is_not_found(other_user, paper_account, paper):
    with pytest.raises(NotFound):
        services.order_place(
            owner=other_user, account=paper_account, symbol="BTC/USDT", side="buy", type="market",
            amount=Decimal("0.01"), gateway=paper,
        )  # fmt: skip


def test_paper_market_order_fills_at_the_open_and_builds_a_long_position(place, replay, btc_1h):
    order = place()
    assert order.status == Order.Status.FILLED
    assert order.filled == Decimal("0.01")
    open_price = Decimal(repr(float(btc_1h.open[replay.cursor])))
    assert order.average_price == open_price
    fill = Fill.objects.get(order=order)
    assert (fill.amount, fill.price, fill.paper_account_id) == (
        Decimal("0.01"),
        open_price,
        order.paper_account_id,
    )
    assert fill.fee == Decimal("0.01") * open_price * Decimal("0.001")
    position = Position.objects.get(paper_account=order.paper_account, symbol="BTC/USDT")
    assert (position.side, position.size, position.average_entry) == ("long", Decimal("0.01"), open_price)


def test_a_paper_order_is_written_sent_and_filled_all_or_none(
    user, paper_account, paper, replay, monkeypatch
):
    balances = dict(paper_account.balances.values_list("asset", "free"))

    def broken(order, fill):
        raise RuntimeError("recording the position failed")

    monkeypatch.setattr(services, "_apply_to_position", broken)
    with pytest.raises(RuntimeError):
        services.order_place(
            owner=user, account=paper_account, gateway=paper, symbol="BTC/USDT", side="buy",
            type="market", amount=Decimal("0.01"),
        )  # fmt: skip
    # Nothing half-written: no order, no paper order or trade, no fill, the balances as they were.
    assert not Order.objects.filter(owner=user).exists()
    assert not PaperOrder.objects.filter(account=paper_account).exists()
    assert not Fill.objects.filter(order__owner=user).exists()
    assert dict(paper_account.balances.values_list("asset", "free")) == balances


def test_inside_a_callers_transaction_a_paper_order_is_sent_once_that_commits(
    user, paper_account, paper, replay, django_capture_on_commit_callbacks
):
    from django.db import transaction

    with django_capture_on_commit_callbacks() as after_commit, transaction.atomic():
        order = services.order_place(
            owner=user, account=paper_account, gateway=paper, symbol="BTC/USDT", side="buy",
            type="market", amount=Decimal("0.01"),
        )  # fmt: skip
        assert order.status == Order.Status.PENDING
        assert not PaperOrder.objects.filter(account=paper_account).exists()
    for callback in after_commit:
        callback()
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED
    assert PaperOrder.objects.filter(account=paper_account).count() == 1


def test_paper_limit_order_rests_then_fills_when_a_candle_crosses_it(
    place, replay, btc_1h, paper_account, paper, django_capture_on_commit_callbacks
):
    level = Decimal(str(round(float(btc_1h.open[1]) * 0.99, 2)))
    order = place(type="limit", price=level)
    assert order.status == Order.Status.OPEN
    crossed = next(i for i in range(1, len(btc_1h.low)) if btc_1h.low[i] <= float(level))
    replay.cursor = crossed + 1
    sync(paper_account, paper, django_capture_on_commit_callbacks)
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED
    assert order.fills.get().price <= level


def test_cancel_releases_a_resting_limit_and_a_second_cancel_is_a_conflict(place, paper):
    order = place(type="limit", price=Decimal("20000"))
    cancelled = services.order_cancel(order=order, gateway=paper)
    assert cancelled.status == Order.Status.CANCELLED
    assert PaperOrder.objects.get(client_order_id=order.client_order_id).status == "cancelled"
    with pytest.raises(Conflict):
        services.order_cancel(order=cancelled, gateway=paper)


@pytest.fixture(params=["native", "emulated"])
def bracket_path(request, paper) -> str:
    """Brackets both ways on the paper exchange: its native OCO, and the platform's emulation
    (the path of a live exchange without OCO, ``supports_oco`` False), with one behaviour."""
    if request.param == "emulated":
        paper.supports_oco = False
    return request.param


@pytest.fixture
def order_events(monkeypatch):
    """The ``order.*``/``fill.*`` events the orders service publishes, as (type, order id, status)."""
    sent: list[tuple[str, int, str | None]] = []
    publish = services.publish_event

    def record(user_id, kind, payload, on_commit=False):
        if kind.startswith(("order.", "fill.")):
            order_id = payload["order_id"] if kind.startswith("fill.") else payload["id"]
            sent.append((kind, order_id, payload.get("status")))
        return publish(user_id, kind, payload, on_commit=on_commit)

    monkeypatch.setattr(services, "publish_event", record)
    return sent


def leg_events(events, leg) -> list[tuple[str, str | None]]:
    return [(kind, status) for kind, order_id, status in events if order_id == leg.pk]


def assert_legs_armed(entry, bracket_path) -> None:
    """After the entry's fill: native, both legs rest at the exchange as one OCO pair; emulated, the
    take-profit rests there and the platform holds the stop-loss."""
    stop_leg = entry.legs.get(role="stop_loss")
    tp_leg = entry.legs.get(role="take_profit")
    assert (tp_leg.status, tp_leg.held, tp_leg.reduce_only) == ("open", False, True)
    remote_tp = PaperOrder.objects.get(client_order_id=tp_leg.client_order_id)
    if bracket_path == "native":
        assert (stop_leg.status, stop_leg.held, stop_leg.reduce_only) == ("open", False, True)
        remote_stop = PaperOrder.objects.get(client_order_id=stop_leg.client_order_id)
        assert remote_stop.type == "stop_market" and remote_stop.stop_price == stop_leg.stop_price
        assert remote_tp.oco_group and remote_tp.oco_group == remote_stop.oco_group
    else:
        assert (stop_leg.status, stop_leg.held) == ("pending", True)
        assert not PaperOrder.objects.filter(client_order_id=stop_leg.client_order_id).exists()
        assert remote_tp.oco_group == ""


def test_bracket_take_profit_fill_cancels_the_stop_loss(
    place,
    replay,
    btc_1h,
    paper_account,
    paper,
    django_capture_on_commit_callbacks,
    bracket_path,
    order_events,
):
    entry_price = float(btc_1h.open[1])
    tp = Decimal(str(round(entry_price * 1.004, 2)))
    sl = Decimal(str(round(entry_price * 0.5, 2)))
    entry = place(stop_loss=sl, take_profit=tp)
    assert entry.status == Order.Status.FILLED
    stop_leg = entry.legs.get(role="stop_loss")
    tp_leg = entry.legs.get(role="take_profit")
    assert_legs_armed(entry, bracket_path)
    crossed = next(i for i in range(1, len(btc_1h.high)) if btc_1h.high[i] >= float(tp))
    replay.cursor = crossed + 1
    sync(paper_account, paper, django_capture_on_commit_callbacks)
    tp_leg.refresh_from_db()
    stop_leg.refresh_from_db()
    assert tp_leg.status == Order.Status.FILLED
    assert stop_leg.status == Order.Status.CANCELLED
    assert tp_leg.fills.get().price >= tp
    position = Position.objects.get(paper_account=paper_account)
    assert position.size == 0 and position.side == "flat"
    # The same events either way: the take-profit opens, fills (with its fill), the stop is cancelled.
    assert leg_events(order_events, tp_leg) == [
        ("order.updated", "open"),
        ("fill.created", None),
        ("order.updated", "filled"),
    ]
    # (Natively it rested at the exchange first: an "open" update the emulation's held stop lacks.)
    assert leg_events(order_events, stop_leg)[-1] == ("order.updated", "cancelled")
    assert not PaperOrder.objects.filter(account=paper_account, status="open").exists()


def test_bracket_stop_loss_fill_cancels_the_take_profit(
    place,
    replay,
    btc_1h,
    paper_account,
    paper,
    django_capture_on_commit_callbacks,
    bracket_path,
    order_events,
):
    entry_price = float(btc_1h.open[1])
    sl = Decimal(str(round(entry_price * 0.995, 2)))
    tp = Decimal(str(round(entry_price * 3, 2)))
    entry = place(stop_loss=sl, take_profit=tp)
    below = next(i for i in range(2, len(btc_1h.open)) if btc_1h.open[i] <= float(sl))
    replay.cursor = below
    sync(paper_account, paper, django_capture_on_commit_callbacks)
    stop_leg = entry.legs.get(role="stop_loss")
    tp_leg = entry.legs.get(role="take_profit")
    assert stop_leg.status == Order.Status.FILLED
    assert tp_leg.status == Order.Status.CANCELLED
    assert PaperOrder.objects.get(client_order_id=tp_leg.client_order_id).status == "cancelled"
    remote_stop = PaperOrder.objects.get(client_order_id=stop_leg.client_order_id)
    if bracket_path == "native":
        # The exchange filled the stop by the engine's rule: at the stop, or the gapped open below it.
        assert remote_stop.type == "stop_market" and stop_leg.fills.get().price <= sl
    else:
        # The platform saw the price below the stop and fired the leg at market.
        assert remote_stop.type == "market"
        assert stop_leg.fills.get().price == Decimal(repr(float(btc_1h.open[below])))
    position = Position.objects.get(paper_account=paper_account)
    assert position.size == 0 and position.side == "flat"
    assert leg_events(order_events, stop_leg)[-2:] == [("fill.created", None), ("order.updated", "filled")]
    assert leg_events(order_events, tp_leg)[-1] == ("order.updated", "cancelled")


def test_cancelling_an_unfilled_bracket_entry_cancels_its_legs(place, paper, bracket_path):
    entry = place(
        type="limit", price=Decimal("20000"), stop_loss=Decimal("19000"), take_profit=Decimal("21000")
    )
    services.order_cancel(order=entry, gateway=paper)
    assert set(entry.legs.values_list("status", flat=True)) == {"cancelled"}
    assert not PaperOrder.objects.filter(client_order_id__in=entry.legs.values("client_order_id")).exists()


def test_native_bracket_legs_whose_placement_was_lost_are_placed_once_by_sync(
    user, paper_account, paper, django_capture_on_commit_callbacks, btc_1h
):
    entry_price = float(btc_1h.open[1])
    sl, tp = (Decimal(str(round(entry_price * f, 2))) for f in (0.5, 1.5))
    with django_capture_on_commit_callbacks() as lost:
        # The paper entry is written, sent and filled in the placing transaction ...
        entry = services.order_place(
            owner=user, account=paper_account, gateway=paper, symbol="BTC/USDT", side="buy",
            type="market", amount=Decimal("0.01"), stop_loss=sl, take_profit=tp,
        )  # fmt: skip
    # ... and what was to run after that commit (the legs' placement, its events) is lost
    entry.refresh_from_db()
    assert entry.status == Order.Status.FILLED
    assert set(entry.legs.values_list("status", "held")) == {("pending", True)}
    sync(paper_account, paper, django_capture_on_commit_callbacks)
    sync(paper_account, paper, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        for callback in lost:  # a late delivery of the lost callbacks changes nothing either
            callback()
    assert set(entry.legs.values_list("status", "held")) == {("open", False)}
    legs = PaperOrder.objects.filter(client_order_id__in=entry.legs.values("client_order_id"))
    assert legs.count() == 2 and len({leg.oco_group for leg in legs}) == 1


def test_cancelling_one_native_bracket_leg_cancels_both_as_the_exchange_does(place, paper, btc_1h):
    entry_price = float(btc_1h.open[1])
    entry = place(
        stop_loss=Decimal(str(round(entry_price * 0.5, 2))),
        take_profit=Decimal(str(round(entry_price * 1.5, 2))),
    )
    stop_leg = entry.legs.get(role="stop_loss")
    services.order_cancel(order=stop_leg, gateway=paper)
    assert set(entry.legs.values_list("status", flat=True)) == {"cancelled"}
    remote = PaperOrder.objects.filter(client_order_id__in=entry.legs.values("client_order_id"))
    assert set(remote.values_list("status", flat=True)) == {"cancelled"}
    assert paper.fetch_balance().get("BTC").free == Decimal("0.01")  # the pair's reservation released


def test_a_bracket_the_exchange_refuses_as_an_oco_pair_is_emulated(
    place, replay, btc_1h, paper_account, paper, django_capture_on_commit_callbacks
):
    # A stop this far below is worth less than the market's 5 USDT minimum as a resting order,
    # so the exchange refuses the pair; the platform holds the stop and fires it at market.
    entry = place(stop_loss=Decimal("100"), take_profit=Decimal(str(round(float(btc_1h.open[1]) * 3, 2))))
    assert_legs_armed(entry, "emulated")


def test_a_pending_order_whose_send_was_lost_is_sent_once_by_sync(
    user, paper_account, paper, django_capture_on_commit_callbacks
):
    lost = OrderFactory(owner=user, paper_account=paper_account, status="pending", price=Decimal("20000"))
    sync(paper_account, paper, django_capture_on_commit_callbacks)
    sync(paper_account, paper, django_capture_on_commit_callbacks)
    lost.refresh_from_db()
    assert lost.status == Order.Status.OPEN
    assert PaperOrder.objects.filter(client_order_id=lost.client_order_id).count() == 1


def test_close_position_places_a_reduce_only_market_sell(
    place, user, paper_account, paper, django_capture_on_commit_callbacks
):
    place()
    position = Position.objects.get(paper_account=paper_account)
    with django_capture_on_commit_callbacks(execute=True):
        close = services.position_close(owner=user, position=position, gateway=paper)
    close.refresh_from_db()
    position.refresh_from_db()
    assert (close.side, close.type, close.reduce_only, close.status) == ("sell", "market", True, "filled")
    assert position.size == 0


def test_cancel_all_cancels_only_the_owners_open_orders(place, user, other_user, paper):
    place(type="limit", price=Decimal("20000"))
    place(type="limit", price=Decimal("20001"))
    theirs = OrderFactory(owner=other_user, paper_account=PaperAccountFactory(user=other_user))
    assert services.order_cancel_all(owner=user) == 2
    theirs.refresh_from_db()
    assert theirs.status == Order.Status.OPEN


@pytest.mark.parametrize(
    ("current", "new", "legal"),
    [
        ("pending", "open", True),
        ("pending", "filled", True),
        ("open", "partially_filled", True),
        ("partially_filled", "filled", True),
        ("partially_filled", "open", False),
        ("filled", "cancelled", False),
        ("cancelled", "open", False),
        ("rejected", "filled", False),
        ("expired", "expired", True),
    ],
)
def test_status_transitions_follow_the_one_table(current, new, legal):
    order = Order(status=current)
    if legal:
        lifecycle.transition(order, new)
        assert order.status == new
    else:
        with pytest.raises(Conflict) as err:
            lifecycle.transition(order, new)
        assert err.value.status == 409


def test_a_refusal_inside_the_placement_is_recorded_on_the_order_and_nothing_else_is_written(
    place, paper_account
):
    # An order the paper exchange refuses once it holds the account's lock (a reduce-only close of
    # what is not held: no pre-check) is stored as rejected with the reason; what the exchange began
    # (a balance row for the asset) is undone by its savepoint. A spot order it may only refuse for
    # funds has none (OrderRequest.in_caller_transaction): that refusal rolls back the placement
    # whole (test_order_beyond_the_balance_is_refused_and_nothing_is_written).
    before = sorted(paper_account.balances.values_list("asset", "free", "used"))
    order = place(side="sell", amount=Decimal("5"), reduce_only=True)  # a close of what is not held
    assert order.status == "rejected" and "insufficient" in order.reason.lower()
    assert PaperOrder.objects.count() == 0
    assert sorted(paper_account.balances.values_list("asset", "free", "used")) == before
    assert place().status == "filled"  # the account is not left locked or broken
