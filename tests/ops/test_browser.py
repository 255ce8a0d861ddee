"""In headless Chromium through daphne: the user's jobs page follows its jobs' live status and
progress events (backtests, optimizations, imports, bot replays), without a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.core.events import publish_event
from tests.bots.test_browser import login
from tests.factories import UserFactory
from tests.ops.support import jobs_of_every_kind

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_jobs_page_rows_follow_live_status_and_progress(page):
    user = UserFactory()
    jobs = jobs_of_every_kind(user)
    login(page, user)
    page.goto("/jobs/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on", timeout=15000)

    def row(kind: str):
        return page.locator(f'tr[data-job="{kind}-{jobs[kind].pk}"]')

    publish_event(
        user.id, "optimization.progress", {"id": jobs["optimization"].pk, "status": "running", "progress": 55}
    )
    expect(row("optimization").locator('[data-field="progress"]')).to_have_text("55 %", timeout=15000)
    publish_event(
        user.id,
        "optimization.status",
        {"id": jobs["optimization"].pk, "status": "completed", "progress": 100},
    )
    expect(row("optimization").locator('[data-field="status"]')).to_have_text("completed")
    expect(row("optimization").locator('[data-field="status"]')).to_have_class("badge ok")

    # An import job's progress event carries no kind: its id finds the row.
    publish_event(user.id, "marketdata.job", {"id": jobs["import"].pk, "status": "running", "progress": 30})
    expect(row("import").locator('[data-field="progress"]')).to_have_text("30 %")
    publish_event(
        user.id, "bot.replay.progress", {"id": jobs["bot_replay"].pk, "status": "running", "progress": 12}
    )
    expect(row("bot_replay").locator('[data-field="progress"]')).to_have_text("12 %")
    # Another job's event (an id not on the page) changes nothing.
    publish_event(
        user.id, "backtest.progress", {"id": jobs["backtest"].pk + 1000, "status": "running", "progress": 7}
    )
    publish_event(
        user.id, "backtest.status", {"id": jobs["backtest"].pk, "status": "completed", "progress": 100}
    )
    expect(row("backtest").locator('[data-field="status"]')).to_have_text("completed")
    expect(row("backtest").locator('[data-field="progress"]')).to_have_text("100 %")
    assert page.console_errors == []
