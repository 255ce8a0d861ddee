"""A new trader in a real browser: registers, logs in, sees the shell with the live indicator green."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "a-Long-passphrase-9"


def test_register_login_and_live_indicator(page):
    email = f"browser-{uuid.uuid4().hex[:8]}@example.com"
    page.goto("/accounts/register/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Welcome")

    page.click("text=Log out")
    expect(page.locator("h1")).to_have_text("Log in")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")

    indicator = page.locator("#live-indicator")
    expect(indicator).to_have_attribute("data-state", "on", timeout=15000)
    expect(page.locator("#dash-live")).to_have_text("connected")
    for label in ("Markets", "Backtests", "Bots", "Orders", "Portfolio", "Risk", "Exchanges", "Settings"):
        expect(page.locator("nav.nav").get_by_role("link", name=label, exact=True)).to_be_visible()
    assert page.console_errors == []


def test_api_docs_render_in_browser(page):
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui")).to_be_visible(timeout=15000)
    expect(page.locator("text=/api/v1/auth/token/").first).to_be_visible(timeout=15000)
