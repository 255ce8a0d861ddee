"""In headless Chromium: the kill-switch button needs its typed confirmation, then shows the audit."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.bots.models import Bot
from apps.risk.models import KillSwitchActivation, RiskProfile
from tests.factories import PASSWORD, BotFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_kill_switch_button_is_guarded_then_stops_the_bots_and_releases(page):
    user = UserFactory()
    bot = BotFactory(owner=user, status=Bot.Status.RUNNING)
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/risk/")

    # Without the typed word the browser does not even send the form.
    page.click("#kill-switch-button")
    assert not KillSwitchActivation.objects.exists()
    page.fill("#kill-switch-confirm", "STOP")
    page.click("#kill-switch-button")
    expect(page.locator("#kill-switch")).to_contain_text("Kill switch ON", timeout=15000)
    expect(page.locator("#kill-switch")).to_contain_text("1 bot(s) stopped")
    assert RiskProfile.objects.get(owner=user).kill_switch is True
    assert Bot.objects.get(pk=bot.pk).status in ("stopping", "stopped")

    page.check("#kill-switch input[name=confirm]")
    page.get_by_role("button", name="Release kill switch").click()
    expect(page.locator("#kill-switch-button")).to_be_visible(timeout=15000)
    assert RiskProfile.objects.get(owner=user).kill_switch is False
    assert page.console_errors == []
