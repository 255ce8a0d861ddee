"""In a real browser: add a connection with the per-exchange help, press Test, see the live result.

The page runs on its own daphne server whose ccxt clients point at the fake
Binance in this process (``MARKETDATA_API_OVERRIDES``), so "Test" goes through
the real API, service, ccxt client and HTTP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.exchanges.models import ExchangeConnection
from tests.exchanges.fake_binance_account import API_KEY, SECRET, BinanceAccount
from tests.factories import PASSWORD, UserFactory
from tests.support import servers
from tests.support.fake_exchange import FakeBinance

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

LOG = Path(__file__).resolve().parents[2] / "var" / "test-logs" / f"exchanges-asgi-{os.getpid()}.log"


@pytest.fixture
def fake():
    with FakeBinance() as server:
        yield server


@pytest.fixture
def site(fake, django_db_blocker):
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
        pytest.skip("needs DATABASE_URL (PostgreSQL) and REDIS_URL")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    original = servers.child_env

    def child_env(**extra):
        return original(MARKETDATA_API_OVERRIDES=json.dumps(fake.overrides()), **extra)

    servers.child_env = child_env
    try:
        with servers.asgi_server(log_path=LOG) as url:
            yield url
    finally:
        servers.child_env = original


def test_add_connection_then_test_it_live(browser, site, fake):
    account = BinanceAccount(fake).install()
    account.restrictions["enableWithdrawals"] = True
    user = UserFactory()
    context = browser.new_context(base_url=site)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto("/accounts/login/")
        page.fill("input[name=username]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto("/exchanges/")
        expect(page.locator("h1")).to_have_text("Exchanges")
        expect(page.locator("#paper-balances")).to_contain_text("USDT")

        page.select_option("select[name=exchange]", "okx")
        expect(page.locator("#exchange-help")).to_contain_text("passphrase")
        expect(page.locator('[data-field="passphrase"]')).to_be_visible()
        page.select_option("select[name=exchange]", "binance")
        expect(page.locator('[data-field="passphrase"]')).to_be_hidden()
        page.fill("input[name=label]", "Binance main")
        page.fill("input[name=api_key]", API_KEY)
        page.fill("input[name=api_secret]", SECRET)
        page.click("#add-connection button[type=submit]")

        row = page.locator("tr[data-connection]")
        expect(row).to_contain_text("Binance main")
        expect(row).to_contain_text(API_KEY[-4:])
        assert API_KEY not in page.content() and SECRET not in page.content()
        row.get_by_role("button", name="Test").click()
        expect(row.locator('[data-role="status"]')).to_have_text("Connected", timeout=15000)
        expect(row.locator('[data-role="permissions"]')).to_contain_text("can withdraw")
        connection = ExchangeConnection.objects.get(user=user)
        assert connection.status == "connected" and connection.can_withdraw
        assert errors == []
    finally:
        context.close()
