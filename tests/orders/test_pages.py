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


def test_orders_page_filters_by_bot_and_account_and_lists_trades(client, user):
    from apps.exchanges.services import paper_account_get_or_create
    from tests.factories import BotFactory, FillFactory

    bot = BotFactory(owner=user, name="grid one")
    bot_account = paper_account_get_or_create(user=user, bot_id=bot.pk)
    OrderFactory(owner=user, bot=bot, paper_account=bot_account, symbol="SOL/USDT")
    manual = OrderFactory(owner=user, symbol="ADA/USDT")
    FillFactory(order=manual, price=Decimal("0.5"), amount=Decimal("20"))
    client.force_login(user)
    page = client.get(reverse("orders:index")).content.decode()
    assert f'<option value="{bot.pk}">grid one</option>' in page
    assert f'value="paper:{bot_account.pk}"' in page
    assert 'id="trades"' in page and "ADA/USDT" in page

    by_bot = client.get(reverse("orders:index"), {"bot": bot.pk}).content.decode()
    assert f'data-order="{manual.pk}"' not in by_bot and "SOL/USDT" in by_bot
    by_account = client.get(reverse("orders:index"), {"account": f"paper:{bot_account.pk}"}).content.decode()
    assert f'data-order="{manual.pk}"' not in by_account
    bad = client.get(reverse("orders:index"), {"account": "moon:1"}).content.decode()
    assert "No orders match" in bad


def test_orders_api_account_filter(auth_client, user):
    from apps.exchanges.services import paper_account_get_or_create
    from tests.support.api import assert_error

    mine = OrderFactory(owner=user)
    account = paper_account_get_or_create(user=user)
    url = reverse("orders-api:order-list")
    body = auth_client.get(url, {"account": f"paper:{account.pk}"}).json()
    assert [o["id"] for o in body["results"]] == [mine.pk]
    assert auth_client.get(url, {"account": "connection:999"}).json()["count"] == 0
    assert_error(auth_client.get(url, {"account": "paper"}), 400, "invalid", "account")
