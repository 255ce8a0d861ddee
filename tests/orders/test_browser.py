"""In headless Chromium: place a manual limit order on paper from the ticket, then cancel it;
close an open paper position from the positions table."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from apps.orders.models import Fill, Order, Position
from apps.orders.services import order_place
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
    # A paper account is offered only what the paper exchange simulates (no take-profit limit).
    offered = page.evaluate(
        "[...document.querySelectorAll('#ticket-type option:not([disabled])')].map(o => o.value)"
    )
    assert offered == ["market", "limit", "stop_market", "stop_limit", "take_profit", "trailing_stop"]

    page.select_option("#ticket-type", "limit")
    page.fill("#ticket-amount", "0.01")
    page.fill("#ticket-price", "10000")
    expect(page.locator("#ticket-preview")).to_contain_text("Cost 100.00 USDT")
    page.click("#ticket-submit")

    row = page.locator("#orders tbody tr[data-order]").first
    expect(row.locator('[data-field="status"]')).to_have_text("Open", timeout=15000)
    order = Order.objects.get(owner=user)
    assert (order.type, order.amount, order.price) == ("limit", Decimal("0.01"), Decimal("10000"))
    # The row the live event added reads as a rendered one does (|amount): no 18 padding places.
    expect(row.locator("td").nth(4)).to_have_text("0.01 BTC")
    expect(row.locator("td").nth(5)).to_have_text("10,000")

    row.get_by_role("button", name="Cancel").click()
    expect(row.locator('[data-field="status"]')).to_have_text("Cancelled", timeout=15000)
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert page.console_errors == []


def test_close_an_open_paper_position_from_the_positions_table(page, candles_stored):
    user = UserFactory()
    paper = PaperAccountFactory(user=user, initial_balances={"USDT": "100000"})
    # The open position: a market buy, filled by the paper exchange when it commits.
    entry = order_place(
        owner=user, account=paper, symbol="BTC/USDT", side="buy", type="market", amount=Decimal("0.01")
    )
    position = Position.objects.get(paper_account=paper, symbol="BTC/USDT")
    assert (entry.status, position.side, position.size) == ("filled", "long", Decimal("0.01"))
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/orders/")
    row = page.locator(f'#positions tbody tr[data-position="{position.pk}"]')
    expect(row).to_contain_text("Long")
    expect(page.locator("#trades tbody tr[data-fill]")).to_have_count(1)

    page.on("dialog", lambda dialog: dialog.accept())  # a confirmation, if the page asks
    row.get_by_role("button", name="Close").click()
    # Without a reload: the position leaves the table, the closing order and its fill appear.
    expect(row).to_have_count(0, timeout=15000)
    expect(page.locator("#positions tbody")).to_contain_text("No open positions.")
    expect(page.locator("#trades tbody tr[data-fill]")).to_have_count(2, timeout=15000)
    closing = Order.objects.exclude(pk=entry.pk).get(owner=user)
    assert (closing.side, closing.type, closing.amount, closing.reduce_only, closing.status) == (
        "sell", "market", Decimal("0.01"), True, "filled"
    )  # fmt: skip
    closing_row = page.locator(f'#orders tbody tr[data-order="{closing.pk}"]')
    expect(closing_row.locator('[data-field="status"]')).to_have_text("Filled")
    expect(closing_row).to_contain_text("Sell")
    expect(closing_row.get_by_role("button", name="Cancel")).to_have_count(0)
    sold = Fill.objects.get(order=closing)
    expect(page.locator("#trades tbody tr[data-fill]").first).to_contain_text("Sell")
    trade = page.locator(f'#trades tbody tr[data-fill="{sold.pk}"] td')
    expect(trade.nth(3)).to_have_text("0.01")
    expect(trade.nth(5)).to_have_text(f"{(sold.price * sold.amount).normalize():,f}")
    position.refresh_from_db()
    assert (position.side, position.size, position.average_entry) == ("flat", 0, None)
    bought = Fill.objects.get(order=entry)
    assert position.realized_pnl == (sold.price - bought.price) * Decimal("0.01") - bought.fee - sold.fee
    # A reload agrees: no open position left.
    page.reload()
    expect(page.locator("#positions tbody")).to_contain_text("No open positions.")
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
    page.fill("#ticket-amount", "1000")  # on the step, though 1000 / 0.00001 is 99999999.99999999 in floats
    page.locator("#ticket-amount").blur()
    expect(page.locator("#ticket-amount")).to_have_value("1000.00000")
    page.fill("#ticket-amount", "0.0123456")
    page.locator("#ticket-amount").blur()
    expect(page.locator("#ticket-amount")).to_have_value("0.01234")
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


def test_live_rows_format_amounts_as_the_server_does(page):
    # Python's str of a Decimal may use an exponent ("0E-18", "1.5E-7"); |amount never does.
    user = UserFactory()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/orders/")
    cases = {
        "0E-18": "0",
        "1.5E-7": "0.00000015",
        "-2.5E+3": "-2,500",
        "-0E-18": "0",
        "123456.780000000000000000": "123,456.78",
        "-1234.5": "-1,234.5",
        "42": "42",
    }
    shown = page.evaluate("(values) => values.map((v) => window.Format.amount(v))", list(cases))
    assert dict(zip(cases, shown, strict=True)) == cases
