from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.orders.models import Order
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_orders_page_empty_state(client, user):
    client.force_login(user)
    response = client.get(reverse("orders:index"))
    assert response.status_code == 200
    assert "No orders yet" in response.content.decode()


def test_orders_page_lists_own_orders_with_exact_amounts(client, user, other_user):
    OrderFactory(owner=user, amount=Decimal("0.000000000000000123"), symbol="SOL/USDT")
    OrderFactory(owner=other_user, symbol="DOGE/USDT")
    client.force_login(user)
    html = client.get(reverse("orders:index")).content.decode()
    assert "SOL/USDT" in html and "0.000000000000000123" in html
    assert "DOGE/USDT" not in html


def test_orders_page_open_filter(client, user):
    OrderFactory(owner=user, symbol="SOL/USDT", status=Order.Status.OPEN)
    OrderFactory(owner=user, symbol="ADA/USDT", status=Order.Status.CANCELLED)
    client.force_login(user)
    html = client.get(reverse("orders:index"), {"open": "true"}).content.decode()
    assert "SOL/USDT" in html and "ADA/USDT" not in html
    bad = client.get(reverse("orders:index"), {"status": "bogus"})
    assert bad.status_code == 200
    assert "No orders match" in bad.content.decode()
