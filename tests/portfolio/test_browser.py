"""The portfolio page's charts in Chromium (found trying the platform: the daily and monthly P&L
bars lay sideways on a date axis starting "Jan 1, 1970")."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.portfolio import services
from tests.bots.test_browser import login
from tests.factories import PaperAccountFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_daily_and_monthly_pnl_are_upright_bars_on_a_money_axis(page):
    user = UserFactory()
    PaperAccountFactory(user=user, initial_balances={"USDT": "1234.5"})
    services.snapshot_take(user=user)
    login(page, user)
    page.goto("/portfolio/")
    for chart in ("portfolio-daily", "portfolio-monthly"):
        page.locator(f"#{chart} .main-svg").first.wait_for()
        axes = page.evaluate(
            "(id) => { const el = document.getElementById(id);"
            " return [el._fullLayout.xaxis.type, el._fullLayout.yaxis.type, el._fullData[0].orientation]; }",
            chart,
        )
        assert axes[1] == "linear" and axes[2] == "v", (chart, axes)
    assert page.evaluate("document.getElementById('portfolio-daily')._fullLayout.xaxis.type") == "date"
    expect(page.locator("#portfolio-daily")).not_to_contain_text("1970")
    # One day of history: the axis spans a week of days, not milliseconds around one ("23:59:59.9996").
    span = page.evaluate(
        "() => document.getElementById('portfolio-daily')._fullLayout.xaxis.range.map((v) => Date.parse(v))"
    )
    assert span[1] - span[0] >= 7 * 86_400_000 - 1000, span
    expect(page.locator("#portfolio-daily")).not_to_contain_text("23:59")
    # A record of minutes: its return is not annualized (GIPS), and the page says why.
    expect(page.locator("#portfolio-performance")).to_contain_text("Annualized return")
    expect(page.locator("#portfolio-performance").locator("xpath=..")).to_contain_text("spans a year")
    assert page.console_errors == []
