"""In headless Chromium with daphne and a real Celery worker: the home page with a running paper
bot shows its equity and P&L changing live, with no reload and no console error."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from apps.bots import services
from apps.bots.models import Bot
from apps.orders.models import Fill
from apps.portfolio import services as portfolio_services
from tests.bots.support import CROSS_PARAMS, store_candles_on_replay
from tests.bots.test_browser import login
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_home_page_follows_a_running_paper_bots_equity_and_pnl_without_reload(page, celery_worker):
    user = UserFactory()
    # Offline the bot's candle clock is the replay feed: it just closed an SMA 2/3 cross up,
    # so the first tick buys at market.
    store_candles_on_replay()
    bot = services.bot_create(
        user=user,
        name="home bot",
        strategy="sma_crossover",
        params=CROSS_PARAMS,
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        allocated_capital=Decimal("1000"),
        sizing={"type": "percent_equity", "value": 0.5},
    )
    services.bot_start(bot=bot)
    wait_for(lambda: Bot.objects.get(pk=bot.pk).status == Bot.Status.RUNNING)
    portfolio_services.snapshot_take(user=user)  # the beat's first point: the bot's paper cash

    login(page, user)
    expect(page.locator("#dash-live")).to_have_text("connected", timeout=15000)
    summary = page.locator("#home-summary")
    equity = summary.locator('[data-field="equity"]')
    positions_value = summary.locator('[data-field="positions_value"]')
    pnl = page.locator(f'[data-bot-pnl="{bot.pk}"]')
    expect(page.locator(f'[data-bot-status="{bot.pk}"]')).to_have_text("Running")
    expect(page.locator("#home-equity")).to_have_attribute("data-points", "1")
    page.locator("#home-equity .main-svg").first.wait_for()  # Plotly drew the curve
    expect(pnl).to_have_text("0.00 USDT")
    before_equity = equity.inner_text()
    assert before_equity == "1,000"  # the bot's paper account holds its allocated capital
    expect(positions_value).to_have_text("0")
    # From here on nothing reloads the page: a marker the reload would drop proves it.
    page.evaluate("window.__noReload = true")

    # The beat job's enqueue for the candle that just closed; the worker ticks the bot, which
    # buys at market: fill.created moves the bot's P&L (fees, the position marked at the price),
    # and the snapshot after the fill (debounced, on the worker) sends portfolio.equity.
    assert services.bots_enqueue_due() == 1
    wait_for(lambda: Fill.objects.filter(order__bot=bot).exists())
    expect(pnl).not_to_have_text("0.00 USDT", timeout=60000)
    expect(positions_value).not_to_have_text("0", timeout=60000)
    expect(equity).not_to_have_text(before_equity, timeout=60000)
    expect(page.locator("#home-positions tbody tr[data-position]")).to_have_count(1, timeout=30000)
    expect(page.locator("#home-positions tbody")).to_contain_text("BTC/USDT")
    # The row the event added reads like a rendered one (Format.label, not the raw "long").
    expect(page.locator('#home-positions [data-field="side"]')).to_have_text("Long")
    assert page.evaluate("window.__noReload") is True
    assert page.console_errors == []
