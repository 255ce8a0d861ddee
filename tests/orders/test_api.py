"""Orders API: read-only list with filters and detail with fills, scoped to the owner."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.orders.models import Order
from tests.factories import BotFactory, FillFactory, OrderFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db


LIST = reverse("orders-api:order-list")


def detail(pk: int) -> str:
    return reverse("orders-api:order-detail", args=[pk])


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {order["id"] for order in response.json()["results"]}


def test_list_shows_only_own_orders_newest_first(auth_client, user, other_user):
    older = OrderFactory(owner=user)
    newer = OrderFactory(owner=user)
    OrderFactory(owner=other_user)
    body = auth_client.get(LIST).json()
    assert body["count"] == 2
    assert [order["id"] for order in body["results"]] == [newer.pk, older.pk]


@pytest.mark.postgres_decimals
def test_amounts_are_exact_decimal_strings_with_their_assets(auth_client, user):
    OrderFactory(owner=user, symbol="ETH/USDT:USDT", amount=Decimal("1.000000000000000001"))
    order = auth_client.get(LIST).json()["results"][0]
    assert Decimal(order["amount"]) == Decimal("1.000000000000000001")
    assert (order["base_asset"], order["quote_asset"]) == ("ETH", "USDT")
    assert Decimal(order["remaining"]) == Decimal("1.000000000000000001")


def test_filters_by_status_symbol_side_bot_and_open(auth_client, user):
    bot = BotFactory(owner=user, symbol="ETH/USDT")
    open_buy = OrderFactory(owner=user)
    filled_sell = OrderFactory(owner=user, side="sell", status=Order.Status.FILLED, filled=Decimal("0.015"))
    canceled = OrderFactory(owner=user, status=Order.Status.CANCELLED)
    eth_bot = OrderFactory(owner=user, symbol="ETH/USDT", bot=bot, status=Order.Status.PARTIALLY_FILLED)

    assert ids(auth_client.get(LIST, {"status": "filled"})) == {filled_sell.pk}
    assert ids(auth_client.get(LIST + "?status=filled&status=cancelled")) == {filled_sell.pk, canceled.pk}
    assert ids(auth_client.get(LIST, {"symbol": "eth/usdt"})) == {eth_bot.pk}
    assert ids(auth_client.get(LIST, {"side": "sell"})) == {filled_sell.pk}
    assert ids(auth_client.get(LIST, {"bot": bot.pk})) == {eth_bot.pk}
    assert ids(auth_client.get(LIST, {"open": "true"})) == {open_buy.pk, eth_bot.pk}
    assert ids(auth_client.get(LIST, {"open": "false"})) == {filled_sell.pk, canceled.pk}


def test_filtering_by_another_users_bot_finds_nothing(auth_client, user, other_user):
    theirs = BotFactory(owner=other_user)
    OrderFactory(owner=other_user, bot=theirs)
    assert ids(auth_client.get(LIST, {"bot": theirs.pk})) == set()


@pytest.mark.parametrize(
    ("param", "value"),
    [("status", "lost"), ("side", "long"), ("bot", "x"), ("bot", "1.5"), ("open", "maybe")],
)
def test_bad_filter_values_are_400(auth_client, param, value):
    assert_error(auth_client.get(LIST, {param: value}), 400, "invalid", param)


def test_pagination(auth_client, user):
    for _ in range(3):
        OrderFactory(owner=user)
    body = auth_client.get(LIST, {"page_size": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    assert_error(auth_client.get(LIST, {"page": 9}), 404, "not_found")


def test_detail_includes_fills_in_time_order(auth_client, user):
    order = OrderFactory(owner=user, status=Order.Status.PARTIALLY_FILLED, filled=Decimal("0.01"))
    first = FillFactory(order=order)
    second = FillFactory(order=order, timestamp=first.timestamp.replace(minute=5), price=Decimal("64251"))
    body = auth_client.get(detail(order.pk)).json()
    assert [fill["id"] for fill in body["fills"]] == [first.pk, second.pk]
    assert Decimal(body["fills"][1]["cost"]) == Decimal("64251") * Decimal("0.005")
    assert body["client_order_id"] == order.client_order_id


def test_another_users_order_is_404(auth_client, other_user):
    order = OrderFactory(owner=other_user)
    assert_error(auth_client.get(detail(order.pk)), 404, "not_found")


def test_orders_are_cancelled_through_the_cancel_action_not_deleted(auth_client, user):
    order = OrderFactory(owner=user)
    assert_error(auth_client.delete(detail(order.pk)), 405, "method_not_allowed")
    assert_error(auth_client.patch(detail(order.pk), {}, format="json"), 405, "method_not_allowed")
