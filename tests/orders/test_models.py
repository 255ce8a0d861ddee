"""The orders tables refuse impossible rows, whoever writes them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from apps.orders.models import Order, new_client_order_id
from tests.factories import FillFactory, OrderFactory

pytestmark = pytest.mark.django_db


def test_open_queryset_is_pending_open_and_partially_filled(user):
    kept = {OrderFactory(owner=user, status=status).pk for status in Order.OPEN_STATUSES}
    for status in ("filled", "cancelled", "rejected", "expired"):
        OrderFactory(owner=user, status=status)
    assert set(Order.objects.open().values_list("pk", flat=True)) == kept


@pytest.mark.parametrize(
    "fields",
    [
        {"amount": Decimal("0")},
        {"filled": Decimal("1")},  # more than the amount
        {"type": "limit", "price": None},
        {"type": "stop_market", "stop_price": None},
        {"price": Decimal("-1")},
        {"fee": Decimal("-0.1")},
    ],
)
def test_impossible_orders_are_rejected_by_the_database(user, fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderFactory(owner=user, **fields)


def test_a_fill_is_recorded_once_per_exchange_trade_id(user):
    order = OrderFactory(owner=user)
    FillFactory(order=order, exchange_trade_id="t-1")
    FillFactory(order=order, exchange_trade_id="")
    FillFactory(order=order, exchange_trade_id="")  # exchanges without trade ids are not blocked
    with pytest.raises(IntegrityError), transaction.atomic():
        FillFactory(order=order, exchange_trade_id="t-1")


def test_client_order_ids_fit_every_exchange():
    client_id = new_client_order_id()
    assert len(client_id) == 32 and client_id.isalnum() and client_id[0].isalpha()
    assert client_id != new_client_order_id()
