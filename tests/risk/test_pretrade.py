"""The pre-trade check inside ``order_place``: a breach stores a rejected order with the numbers, raises
an alert and takes the limit's action; closing orders always pass."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.bots.models import Bot, BotEvent
from apps.core.errors import Conflict
from apps.exchanges.models import PaperOrder
from apps.orders import services as orders
from apps.orders.models import Order
from apps.orders.services import RiskLimitBreached
from apps.risk import services as risk
from apps.risk.killswitch import kill_switch_engage
from apps.risk.models import RiskAlert
from tests.factories import BotFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def place(user, paper_account, paper, django_capture_on_commit_callbacks):
    def _place(**kw):
        kw.setdefault("symbol", "BTC/USDT")
        kw.setdefault("side", "buy")
        kw.setdefault("type", "limit")
        kw.setdefault("price", Decimal("20000"))
        with django_capture_on_commit_callbacks(execute=True):
            order = orders.order_place(owner=user, account=paper_account, gateway=paper, **kw)
        order.refresh_from_db()
        return order

    return _place


def test_order_notional_limit_at_its_boundary_through_order_place(user, place):
    risk.risk_limit_create(user=user, kind="order_notional", value=Decimal("1000"))
    assert place(amount=Decimal("0.04999")).status == "open"  # 999.80
    assert place(amount=Decimal("0.05")).status == "open"  # 1000.00: at the limit passes
    with pytest.raises(RiskLimitBreached) as err:
        place(amount=Decimal("0.05001"))  # 1000.20
    rejected = err.value.order
    assert err.value.code == "risk_limit" and err.value.fields["order_id"] == rejected.pk
    rejected.refresh_from_db()
    assert rejected.status == Order.Status.REJECTED
    assert "1000.2 USDT" in rejected.reason and "1000 USDT" in rejected.reason
    assert not PaperOrder.objects.filter(client_order_id=rejected.client_order_id).exists()
    alert = RiskAlert.objects.get(owner=user)
    assert (alert.kind, alert.severity, alert.data["measured"]) == ("order_notional", "warning", "1000.2")


def test_a_repeated_breach_keeps_one_active_alert(user, place):
    risk.risk_limit_create(user=user, kind="order_notional", value=Decimal("100"))
    for _ in range(3):
        with pytest.raises(RiskLimitBreached):
            place(amount=Decimal("0.01"))
    alert = RiskAlert.objects.get(owner=user)
    assert alert.occurrences == 3 and alert.active
    assert Order.objects.filter(status="rejected").count() == 3


def test_the_same_client_order_id_after_a_rejection_returns_the_rejected_order(user, place):
    risk.risk_limit_create(user=user, kind="order_notional", value=Decimal("100"))
    with pytest.raises(RiskLimitBreached):
        place(amount=Decimal("0.01"), client_order_id="bot1-x-0")
    again = place(amount=Decimal("0.01"), client_order_id="bot1-x-0")
    assert again.status == Order.Status.REJECTED and Order.objects.count() == 1


def test_a_pause_bot_limit_pauses_the_bot_that_placed_the_order(user, place):
    bot = BotFactory(owner=user, status=Bot.Status.RUNNING)
    risk.risk_limit_create(
        user=user, kind="order_notional", value=Decimal("100"), action="pause_bot", bot=bot.pk
    )
    with pytest.raises(RiskLimitBreached) as err:
        place(amount=Decimal("0.01"), bot=bot)
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED
    assert BotEvent.objects.filter(bot=bot, message__startswith="Risk limit").exists()
    # The bot's log has the rejected order with the limit's reason, once.
    rejected = Order.objects.get(pk=err.value.order.pk)
    line = BotEvent.objects.get(bot=bot, kind="order")
    assert line.message == f"Rejected: buy limit 0.01 BTC/USDT ({rejected.reason})"
    assert line.data == {
        "order": rejected.pk,
        "client_order_id": rejected.client_order_id,
        "status": "rejected",
        "reason": rejected.reason,
    }
    assert RiskAlert.objects.get(owner=user).severity == "critical"


def test_a_stop_all_bots_limit_stops_every_bot(user, place, settings):
    bots = [
        BotFactory(owner=user, status=Bot.Status.RUNNING),
        BotFactory(owner=user, status=Bot.Status.PAUSED),
    ]
    other = BotFactory(status=Bot.Status.RUNNING)
    risk.risk_limit_create(user=user, kind="order_notional", value=Decimal("100"), action="stop_all_bots")
    with pytest.raises(RiskLimitBreached):
        place(amount=Decimal("0.01"))
    assert {Bot.objects.get(pk=b.pk).status for b in bots} == {Bot.Status.STOPPING}
    other.refresh_from_db()
    assert other.status == Bot.Status.RUNNING


def test_a_limit_of_another_bot_or_market_does_not_apply(user, place):
    bot = BotFactory(owner=user)
    risk.risk_limit_create(user=user, kind="order_notional", value=Decimal("1"), bot=bot.pk)
    risk.risk_limit_create(user=user, kind="order_notional", value=Decimal("1"), symbol="ETH/USDT")
    assert place(amount=Decimal("0.01")).status == "open"


def test_reduce_only_close_passes_exposure_limits_and_the_kill_switch(user, place, paper_account, paper):
    bought = place(type="market", price=None, amount=Decimal("0.01"))
    assert bought.status == "filled"
    for kind in ("position_quantity", "position_notional", "asset_exposure", "total_exposure", "leverage"):
        risk.risk_limit_create(
            user=user, kind=kind, value=Decimal("0.000001") if kind != "leverage" else Decimal(1)
        )
    with pytest.raises(RiskLimitBreached) as err:
        place(amount=Decimal("0.01"))
    assert {b["code"] for b in err.value.fields["limits"]} >= {"position_quantity", "total_exposure"}
    # The kill switch answers an opening order first, with 409 and nothing stored.
    Order.objects.filter(owner=user, status="open").update(status="cancelled")
    kill_switch_engage(user=user, actor=user)
    stored = Order.objects.count()
    with pytest.raises(Conflict) as refused:
        place(amount=Decimal("0.01"))
    assert refused.value.code == "kill_switch_engaged" and Order.objects.count() == stored
    # A reduce-only order that would not reduce is refused by the pre-trade check's kill switch rule.
    with pytest.raises(RiskLimitBreached) as err:
        place(amount=Decimal("0.01"), reduce_only=True)
    assert {b["code"] for b in err.value.fields["limits"]} >= {"kill_switch"}
    position = orders.Position.objects.get(owner=user, symbol="BTC/USDT")
    closed = orders.position_close(owner=user, position=position, gateway=paper)
    assert closed.status != Order.Status.REJECTED and closed.reduce_only


def test_the_profiles_saved_limits_are_enforced(user, place):
    risk.risk_profile_update(
        user=user, currency="USDT", max_position_notional=Decimal("500"), max_daily_loss=None,
        max_leverage=Decimal("1"), max_open_orders=2,
    )  # fmt: skip
    place(amount=Decimal("0.01"))
    place(amount=Decimal("0.01"))
    with pytest.raises(RiskLimitBreached) as err:
        place(amount=Decimal("0.001"))
    assert err.value.fields["limits"][0]["code"] == "open_orders"


@pytest.mark.django_db(transaction=True)
def test_the_orders_api_answers_400_risk_limit_and_lists_the_rejected_order(auth_client, user, market):
    from tests.factories import PaperAccountFactory

    PaperAccountFactory(user=user, initial_balances={"USDT": "100000"})
    risk.risk_limit_create(user=user, kind="order_notional", value=Decimal("100"))
    body = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.01", "price": "20000"}
    response = auth_client.post(reverse("orders-api:order-list"), body, format="json")
    error = assert_error(response, 400, "risk_limit", "risk")
    order = Order.objects.get(pk=error["fields"]["order_id"])
    assert order.status == "rejected" and "200 USDT" in order.reason
    listed = auth_client.get(reverse("orders-api:order-list")).json()["results"]
    assert [(o["id"], o["status"]) for o in listed] == [(order.pk, "rejected")]


def test_a_losing_streak_read_from_the_database_cools_down_new_orders(user, place):
    from django.utils import timezone

    from apps.risk.models import RiskState

    risk.risk_limit_create(user=user, kind="losing_streak", value=Decimal("3"), cooldown_minutes=30)
    RiskState.objects.create(owner=user, consecutive_losses=2, last_loss_at=timezone.now())
    assert place(amount=Decimal("0.01")).status == "open"
    RiskState.objects.filter(owner=user).update(consecutive_losses=3)
    with pytest.raises(RiskLimitBreached) as err:
        place(amount=Decimal("0.01"))
    assert err.value.fields["limits"][0]["code"] == "losing_streak"
    RiskState.objects.filter(owner=user).update(last_loss_at=timezone.now() - timedelta(minutes=31))
    assert place(amount=Decimal("0.01")).status == "open"


def test_a_bot_replays_account_is_no_exposure_and_not_held_by_the_users_limits(
    user, place, paper_account, replay, django_capture_on_commit_callbacks
):
    """A replay's throw-away paper account simulates past candles: its orders count toward none of
    the user's limits, the user's limits and kill switch do not stop the simulation, and the
    portfolio never values it."""
    from apps.exchanges.gateway.paper import PaperGateway
    from apps.exchanges.models import PaperAccount
    from apps.portfolio.selectors import account_list
    from apps.risk.selectors import risk_exposure
    from tests.factories import PaperAccountFactory
    from tests.orders.conftest import BTC_USDT

    simulation = PaperAccountFactory(user=user, bot_id=7, replay_id=99, initial_balances={"USDT": "100000"})
    assert list(PaperAccount.objects.trading().filter(user=user)) == [paper_account]
    assert simulation not in account_list(user=user)

    risk.risk_limit_create(user=user, kind="open_orders", value=Decimal("1"))
    assert place(amount=Decimal("0.01")).status == "open"  # the user's one open order
    gateway = PaperGateway(simulation, prices=replay, markets={"BTC/USDT": BTC_USDT})

    def simulate():
        with django_capture_on_commit_callbacks(execute=True):
            order = orders.order_place(
                owner=user, account=simulation, gateway=gateway, symbol="BTC/USDT", side="buy",
                type="limit", price=Decimal("20000"), amount=Decimal("0.01"),
            )  # fmt: skip
        order.refresh_from_db()
        return order

    # The open-orders limit (1, reached) does not hold the simulation ...
    assert [simulate().status for _ in range(2)] == ["open", "open"]
    # ... and its two open orders are no exposure of the user's: only the real one counts.
    assert len(risk_exposure(owner_id=user.pk).open_orders) == 1
    kill_switch_engage(user=user, actor=user)
    assert simulate().status == "open"  # nor does the kill switch
    with pytest.raises(Conflict):  # the user's own account is still held by the kill switch
        place(amount=Decimal("0.01"))
