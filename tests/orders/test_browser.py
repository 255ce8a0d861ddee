"""In headless Chromium: place a manual limit order on paper from the ticket, then cancel it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from apps.orders.models import Order
from tests.factories import PASSWORD, PaperAccountFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_place_and_cancel_a_manual_limit_order_on_paper(page, candles_stored):
    user = UserFactory()
    PaperAccountFactory(user=user, initial_balances={"USDT": "100000"})
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/orders/")
    expect(page.locator("#ticket-amount-hint")).to_contain_text("0.00001")

    page.select_option("#ticket-type", "limit")
    page.fill("#ticket-amount", "0.01")
    page.fill("#ticket-price", "10000")
    expect(page.locator("#ticket-preview")).to_contain_text("Cost 100.00 USDT")
    page.click("#ticket-submit")

    row = page.locator("#orders tbody tr[data-order]").first
    expect(row.locator('[data-field="status"]')).to_have_text("Open", timeout=15000)
    order = Order.objects.get(owner=user)
    assert (order.type, order.amount, order.price) == ("limit", Decimal("0.01"), Decimal("10000"))

    row.get_by_role("button", name="Cancel").click()
    expect(row.locator('[data-field="status"]')).to_have_text("Cancelled", timeout=15000)
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert page.console_errors == []
