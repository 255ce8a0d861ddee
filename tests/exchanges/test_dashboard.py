"""The Exchanges page: connections with status, add form with help, paper balances, reset."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.exchanges import services
from apps.exchanges.models import ExchangeConnection
from tests.exchanges.fake_binance_account import API_KEY, SECRET
from tests.factories import ExchangeConnectionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def test_page_lists_connections_masked_with_status_and_withdraw_warning(logged_in, user, other_user):
    mine = ExchangeConnectionFactory(
        user=user,
        label="Main",
        api_key=API_KEY,
        api_secret=SECRET,
        status=ExchangeConnection.Status.CONNECTED,
        can_withdraw=True,
        can_trade_spot=True,
    )
    ExchangeConnectionFactory(user=other_user, label="Someone else")
    html = logged_in.get(reverse("exchanges:index")).content.decode()
    assert "Main" in html and "Someone else" not in html
    assert API_KEY[-4:] in html and API_KEY not in html and SECRET not in html
    assert "Connected" in html and "can withdraw" in html
    assert reverse("exchanges-api:connection-test", args=[mine.pk]) in html
    assert 'id="supported-exchanges"' in html and "passphrase" in html  # per-exchange help data
    assert "USDT" in html  # the paper account's balance


def test_add_form_creates_a_connection_and_shows_errors(logged_in, user):
    url = reverse("exchanges:connection-add")
    response = logged_in.post(
        url, {"exchange": "okx", "label": "OKX", "api_key": API_KEY, "api_secret": SECRET}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "passphrase" in html.lower() and SECRET not in html
    response = logged_in.post(
        url, {"exchange": "binance", "label": "Main", "api_key": API_KEY, "api_secret": SECRET}
    )
    assert response.status_code == 302
    assert ExchangeConnection.objects.get(user=user).api_secret == SECRET


def test_remove_is_a_soft_delete_and_scoped(logged_in, user, other_user):
    theirs = ExchangeConnectionFactory(user=other_user, label="x")
    assert logged_in.post(reverse("exchanges:connection-delete", args=[theirs.pk])).status_code == 404
    mine = ExchangeConnectionFactory(user=user, label="x")
    assert logged_in.post(reverse("exchanges:connection-delete", args=[mine.pk])).status_code == 302
    mine.refresh_from_db()
    assert mine.deleted_at is not None


def test_paper_reset_form_sets_balances(logged_in, user):
    response = logged_in.post(reverse("exchanges:paper-reset"), {"balances": "USDT=500, ETH=2"})
    assert response.status_code == 302
    account = services.paper_account_get_or_create(user=user)
    assert {b.asset: b.free for b in account.balances.all()} == {"USDT": Decimal("500"), "ETH": Decimal("2")}
    bad = logged_in.post(reverse("exchanges:paper-reset"), {"balances": "USDT=-1"})
    assert bad.status_code == 400 and "USDT" in bad.content.decode()
