"""A live connection's orders placed, synced and cancelled through ccxt against the local fake Binance."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.orders import services
from apps.orders.models import Fill, Order, Position
from tests.exchanges.fake_binance_account import API_KEY, SECRET, BinanceAccount
from tests.factories import ExchangeConnectionFactory
from tests.support.fake_exchange import FakeBinance

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(settings):
    with FakeBinance() as server:
        settings.MARKETDATA_API_OVERRIDES = server.overrides()
        yield server


@pytest.fixture
def binance(fake):
    return BinanceAccount(fake).install()


@pytest.fixture
def connection(user, binance):
    return ExchangeConnectionFactory(user=user, exchange="binance", api_key=API_KEY, api_secret=SECRET)


def place_limit(user, connection, capture, **kw):
    with capture(execute=True):
        order = services.order_place(
            owner=user, account=connection, symbol="BTC/USDT", side="buy", type="limit",
            amount=Decimal("0.01"), price=Decimal("30000"), **kw,
        )  # fmt: skip
    order.refresh_from_db()
    return order


def creates(fake) -> int:
    return len([r for r in fake.requests if r.method == "POST" and r.path == "/api/v3/order"])


def test_limit_order_is_sent_with_its_client_id_then_a_fill_is_synced(
    user, connection, fake, binance, django_capture_on_commit_callbacks
):
    order = place_limit(user, connection, django_capture_on_commit_callbacks)
    assert order.status == Order.Status.OPEN
    assert order.connection_id == connection.pk and order.paper_account_id is None
    remote = binance.orders[order.client_order_id]
    assert order.exchange_order_id == remote["orderId"]

    # The exchange fills it; the next sync records the status, the fill and the position.
    remote.update(status="FILLED", executedQty="0.01000000", cummulativeQuoteQty="300.00000000")
    with django_capture_on_commit_callbacks(execute=True):
        result = services.order_sync(account=connection)
    order.refresh_from_db()
    assert (result.checked, result.changed) == (1, 1)
    assert (order.status, order.filled, order.average_price) == ("filled", Decimal("0.01"), Decimal("30000"))
    fill = Fill.objects.get(order=order)
    assert (fill.amount, fill.price, fill.connection_id) == (Decimal("0.01"), Decimal("30000"), connection.pk)
    position = Position.objects.get(connection=connection, symbol="BTC/USDT")
    assert (position.side, position.size) == ("long", Decimal("0.01"))

    # Syncing again changes nothing and records no second fill.
    with django_capture_on_commit_callbacks(execute=True):
        services.order_sync(account=connection)
    assert Fill.objects.count() == 1
    assert creates(fake) == 1


def test_cancel_reaches_the_exchange(user, connection, binance, django_capture_on_commit_callbacks):
    order = place_limit(user, connection, django_capture_on_commit_callbacks)
    cancelled = services.order_cancel(order=order)
    assert cancelled.status == Order.Status.CANCELLED
    assert binance.orders[order.client_order_id]["status"] == "CANCELED"


def test_a_lost_create_answer_is_recovered_by_client_id_without_a_second_order(
    user, connection, fake, binance, django_capture_on_commit_callbacks
):
    binance.lose_next_create_answer = True
    order = place_limit(user, connection, django_capture_on_commit_callbacks, client_order_id="lost-answer-1")
    with django_capture_on_commit_callbacks(execute=True):
        services.order_sync(account=connection)
    order.refresh_from_db()
    assert order.status == Order.Status.OPEN
    assert order.exchange_order_id == binance.orders["lost-answer-1"]["orderId"]
    assert creates(fake) == 1


def test_a_pending_order_the_exchange_never_saw_is_sent_by_sync(
    user, connection, fake, binance, django_capture_on_commit_callbacks
):
    fake.fail("POST", "/api/v3/order", status=503, times=10)
    order = place_limit(user, connection, django_capture_on_commit_callbacks)
    assert order.status == Order.Status.PENDING
    fake._failures.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = services.order_sync(account=connection)
    order.refresh_from_db()
    assert result.resent == 1
    assert order.status == Order.Status.OPEN
    assert list(binance.orders) == [order.client_order_id]


def test_exchange_refusal_is_recorded_as_rejected_with_the_reason(
    user, connection, binance, django_capture_on_commit_callbacks
):
    binance.insufficient = True
    order = place_limit(user, connection, django_capture_on_commit_callbacks)
    assert order.status == Order.Status.REJECTED
    assert "insufficient" in order.reason.lower()
