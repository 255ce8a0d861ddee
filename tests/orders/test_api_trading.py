"""Placing, cancelling and closing through the API on the paper exchange (offline replay of real candles)."""

from __future__ import annotations

import re
import types
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.exchanges.models import PaperOrder
from apps.marketdata import live
from apps.orders.models import Order, Position
from tests.factories import BotFactory, ExchangeConnectionFactory, OrderFactory, PaperAccountFactory
from tests.support.api import assert_error
from tests.support.cache import clear_cache

HOUR = 3_600_000
LIST = reverse("orders-api:order-list")
CANCEL_ALL = reverse("orders-api:order-cancel-all")
POSITIONS = reverse("orders-api:position-list")
TRADES = reverse("orders-api:trade-list")


def cancel_url(pk: int) -> str:
    return reverse("orders-api:order-cancel", args=[pk])


def close_url(pk: int) -> str:
    return reverse("orders-api:position-close", args=[pk])


@pytest.fixture
def market(candles_stored, settings, monkeypatch):
    """The offline replay feed over the stored candles, pinned to candle 100."""
    btc_1h = candles_stored
    settings.MARKETDATA_ONLINE = False
    settings.MARKETDATA_REPLAY_SPEED = 1.0
    k = 100
    wall_ms = (10_000 * len(btc_1h.timestamp) + k) * HOUR + 1
    monkeypatch.setattr(live, "time", types.SimpleNamespace(time=lambda: wall_ms / 1000))
    clear_cache()
    return Decimal(repr(float(btc_1h.open[k])))


@pytest.fixture
def account(user):
    return PaperAccountFactory(
        user=user, slippage={"type": "percentage", "value": 0.0}, max_volume_fraction=None,
        initial_balances={"USDT": "100000"},
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_market_order_is_201_with_its_fill_and_position(auth_client, account, market):
    body = {
        "paper_account": account.pk,
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "market",
        "amount": "0.01",
    }
    response = auth_client.post(LIST, body, format="json")
    assert response.status_code == 201, response.content
    order = response.json()
    assert order["status"] == "filled"
    assert Decimal(order["average_price"]) == market
    assert [Decimal(f["amount"]) for f in order["fills"]] == [Decimal("0.01")]
    positions = auth_client.get(POSITIONS).json()["results"]
    assert [(p["side"], Decimal(p["size"])) for p in positions] == [("long", Decimal("0.01"))]
    trades = auth_client.get(TRADES).json()["results"]
    assert [t["order"] for t in trades] == [order["id"]]

    closed = auth_client.post(close_url(positions[0]["id"]))
    assert closed.status_code == 201, closed.content
    assert (closed.json()["side"], closed.json()["reduce_only"], closed.json()["status"]) == (
        "sell",
        True,
        "filled",
    )
    assert Position.objects.get().size == 0


@pytest.mark.django_db(transaction=True)
def test_limit_order_rests_and_is_cancelled(auth_client, account, market):
    body = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.01", "price": "10000"}
    order = auth_client.post(LIST, body, format="json").json()
    assert order["status"] == "open"
    assert order["paper_account"] == account.pk  # the user's paper account by default
    response = auth_client.post(cancel_url(order["id"]))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert PaperOrder.objects.get(client_order_id=order["client_order_id"]).status == "cancelled"
    assert_error(auth_client.post(cancel_url(order["id"])), 409, "order_finished")


@pytest.mark.django_db(transaction=True)
def test_same_client_order_id_twice_places_one_order(auth_client, account, market):
    body = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.01", "price": "10000",
            "client_order_id": "manual-1"}  # fmt: skip
    first = auth_client.post(LIST, body, format="json").json()
    second = auth_client.post(LIST, body, format="json").json()
    assert first["id"] == second["id"]
    assert PaperOrder.objects.filter(client_order_id="manual-1").count() == 1


@pytest.mark.django_db
def test_precision_minimum_and_unknown_fields_are_400_with_every_field(auth_client, account, market):
    body = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.000015", "price": "30000.001"}
    assert_error(auth_client.post(LIST, body, format="json"), 400, "invalid_order", ["amount", "price"])
    body = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.0001", "price": "30000"}
    assert_error(auth_client.post(LIST, body, format="json"), 400, "invalid_order", "amount")
    body = {"symbol": "BTC/USDT", "side": "up", "type": "limit", "amount": "x", "stop_los": "1"}
    assert_error(auth_client.post(LIST, body, format="json"), 400, "invalid", ["side", "amount", "stop_los"])
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_order_beyond_the_balance_is_400_insufficient_funds(auth_client, account, market):
    body = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "100"}
    error = assert_error(auth_client.post(LIST, body, format="json"), 400, "insufficient_funds", "amount")
    need = re.search(r"this order needs ([0-9.]+),", error["message"]).group(1)
    assert len(need.partition(".")[2]) <= 8, error["message"]  # to the satoshi, not 18 places
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_another_users_accounts_bots_orders_and_positions_are_404(auth_client, user, other_user):
    theirs_paper = PaperAccountFactory(user=other_user)
    theirs_live = ExchangeConnectionFactory(user=other_user)
    theirs_bot = BotFactory(owner=other_user)
    theirs_order = OrderFactory(owner=other_user, paper_account=theirs_paper)
    theirs_position = Position.objects.create(
        owner=other_user, paper_account=theirs_paper, symbol="BTC/USDT", side="long", size=Decimal("1")
    )
    base = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.01"}
    assert_error(auth_client.post(LIST, {**base, "paper_account": theirs_paper.pk}, format="json"), 404)
    assert_error(auth_client.post(LIST, {**base, "connection": theirs_live.pk}, format="json"), 404)
    assert_error(auth_client.post(LIST, {**base, "bot": theirs_bot.pk}, format="json"), 404)
    assert_error(auth_client.post(cancel_url(theirs_order.pk)), 404, "not_found")
    assert_error(auth_client.post(close_url(theirs_position.pk)), 404, "not_found")
    assert_error(auth_client.get(reverse("orders-api:position-detail", args=[theirs_position.pk])), 404)
    assert auth_client.get(POSITIONS).json()["count"] == 0
    assert auth_client.get(TRADES).json()["count"] == 0
    assert auth_client.post(CANCEL_ALL, {}, format="json").json() == {"cancelled": 0}
    theirs_order.refresh_from_db()
    assert theirs_order.status == "open"


@pytest.mark.django_db
def test_every_route_needs_a_login(api_client):
    for url in (LIST, CANCEL_ALL, POSITIONS, TRADES, cancel_url(1), close_url(1)):
        response = (
            api_client.post(url, {}, format="json")
            if "cancel" in url or "close" in url
            else api_client.get(url)
        )
        assert response.status_code in (401, 403), url
