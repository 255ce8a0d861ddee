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


def test_ticket_rounds_to_the_markets_steps_and_shows_each_bad_field(page, candles_stored):
    user = UserFactory()
    PaperAccountFactory(user=user, initial_balances={"USDT": "100000"})
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/orders/")
    expect(page.locator("#ticket-amount-hint")).to_contain_text("0.00001")

    page.select_option("#ticket-type", "limit")
    page.fill("#ticket-amount", "0.0123456")
    page.locator("#ticket-amount").blur()
    expect(page.locator("#ticket-amount")).to_have_value("0.01234")  # down to the amount step
    page.fill("#ticket-price", "10000")
    # A bracket whose legs are on the wrong sides of a buy: both fields are flagged at once.
    page.fill("#ticket-stop-loss", "11000")
    page.fill("#ticket-take-profit", "9000")
    page.click("#ticket-submit")
    expect(page.locator('[data-error-for="stop_loss"]')).to_contain_text("below the entry price")
    expect(page.locator('[data-error-for="take_profit"]')).to_contain_text("above the entry price")
    expect(page.locator("#ticket-stop-loss")).to_have_attribute("aria-invalid", "true")
    assert not Order.objects.filter(owner=user).exists()

    page.fill("#ticket-stop-loss", "9000")
    page.fill("#ticket-take-profit", "11000")
    page.click("#ticket-submit")
    row = page.locator("#orders tbody tr[data-order]").first
    expect(row.locator('[data-field="status"]')).to_have_text("Open", timeout=15000)
    expect(page.locator('[data-error-for="stop_loss"]')).to_be_hidden()
    entry = Order.objects.get(owner=user, role="entry")
    assert entry.amount == Decimal("0.01234")
    assert sorted(entry.legs.values_list("role", flat=True)) == ["stop_loss", "take_profit"]
    # Chromium logs the refused order's 400 as a failed resource; nothing else may appear.
    assert [e for e in page.console_errors if "status of 400" not in e] == []
