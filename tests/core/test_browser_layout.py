"""Layout defects found trying the platform in Chromium at a laptop's 1366 px: wide tables and
long decimals must stay inside their cards, and the new trader's steps must read as a list."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.bots.test_browser import login
from tests.factories import FillFactory, OrderFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

# What a paper fill with slippage stores: a float64 price and an exact 18-place fee.
PRICE = Decimal("103243.826114999990000000")
FEE = Decimal("9.742087432211399056")


def page_overflow(page) -> int:
    """How many CSS pixels the document is wider than the window (0: no horizontal scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_orders_page_with_long_decimals_does_not_scroll_sideways(page):
    user = UserFactory()
    for side in ("buy", "sell", "buy"):
        order = OrderFactory(
            owner=user,
            side=side,
            type="market",
            price=None,
            amount=Decimal("0.09436"),
            filled=Decimal("0.09436"),
            average_price=PRICE,
            fee=FEE,
            status="filled",
        )
        FillFactory(order=order, price=PRICE, amount=Decimal("0.09436"), fee=FEE, fee_asset="USDT")
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, user)
    page.goto("/orders/")
    expect(page.locator("#orders tbody")).to_contain_text("103,243.82611499999")
    assert page_overflow(page) == 0  # was 162 px: the orders table ran past its card
    assert page.console_errors == []


def test_home_steps_list_sits_with_its_text(page):
    user = UserFactory()
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, user)
    steps = page.locator(".empty-state ol")
    expect(steps).to_be_visible()
    # Centred text with a full-width list put the numbers at the card's left edge, far from
    # their items: the list now shrinks to its items and is centred as a block.
    box, card = steps.bounding_box(), page.locator(".empty-state").bounding_box()
    assert box["x"] > card["x"] + 100 and box["width"] < card["width"] * 0.8
    assert page.console_errors == []


def test_jobs_page_filters_sit_side_by_side(page):
    user = UserFactory()
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, user)
    page.goto("/jobs/")
    kind = page.locator("#my-jobs select[name=kind]").bounding_box()
    status = page.locator("#my-jobs select[name=status]").bounding_box()
    # Were two full-width selects stacked above the list (an unstyled form).
    assert status["y"] == kind["y"] and status["x"] > kind["x"] + kind["width"]
    assert page.console_errors == []


def test_checkboxes_sit_on_the_line_of_their_words(page):
    """The order ticket's "Reduce only" and a bot's "close position" checkboxes were full-width
    boxes centred above their words."""
    from tests.factories import BotFactory

    user = UserFactory()
    bot = BotFactory(owner=user, status="running")
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, user)
    for url, name in (("/orders/", "reduce_only"), (f"/bots/{bot.pk}/", "close_position")):
        page.goto(url)
        box = page.locator(f"input[name={name}]").bounding_box()
        label = page.locator(f"label:has(input[name={name}])").bounding_box()
        assert box["width"] < 40, url
        assert abs((box["y"] + box["height"] / 2) - (label["y"] + label["height"] / 2)) < 4, url
    # (no console check: this bot's market has no candles stored, so its chart answers 404s)


def test_risk_pages_exposure_and_alerts_panels_are_wide_enough_for_their_tables(page):
    """Both panels sat in 220 px metric columns and their tables ran out of them."""
    from apps.exchanges.services import paper_account_get_or_create

    user = UserFactory()
    paper_account_get_or_create(user=user)
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, user)
    page.goto("/risk/")
    for panel in ("#risk-exposure", "#risk-alerts"):
        assert page.locator(panel).bounding_box()["width"] > 480, panel
    assert page_overflow(page) == 0
    assert page.console_errors == []
