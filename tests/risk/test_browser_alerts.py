"""In headless Chromium: a risk alert raised by the monitor appears live in the page's feed and is acknowledged."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from playwright.sync_api import expect

from apps.risk import monitoring
from apps.risk import services as risk
from apps.risk.models import RiskAlert, RiskState
from tests.factories import PASSWORD, PaperAccountFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def monitor_in_a_thread(user_id: int) -> None:
    """Playwright keeps an event loop on this thread, where publishing (async_to_sync) cannot run."""

    def run():
        try:
            monitoring.risk_monitor_user(user_id=user_id)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def test_a_new_alert_arrives_live_and_is_acknowledged_from_the_feed(page):
    from django.utils import timezone

    user = UserFactory()
    PaperAccountFactory(user=user)
    risk.risk_limit_create(user=user, kind="daily_loss", value=Decimal("100"))
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/risk/")
    expect(page.locator("#alert-rows")).to_contain_text("No alerts.")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on", timeout=15000)

    RiskState.objects.create(owner=user, day=timezone.now().date(), day_realized=Decimal("-130"))
    monitor_in_a_thread(user.pk)  # publishes risk.alert after its commit

    row = page.locator("#alert-rows tr[data-alert]").first
    expect(row).to_contain_text("today's loss is 130 USDT", timeout=15000)
    row.get_by_role("button", name="Acknowledge").click()
    expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0, timeout=15000)
    assert RiskAlert.objects.get(owner=user).acknowledged_at is not None
    assert page.console_errors == []
