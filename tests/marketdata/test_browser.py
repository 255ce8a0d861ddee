"""Markets and chart pages in headless Chromium against the real ASGI server, with live price events."""

from __future__ import annotations

import re
import threading

import pytest
from playwright.sync_api import expect

from apps.core.events import publish_event
from apps.marketdata import services
from apps.marketdata.models import Market
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def in_thread(fn, *args):
    # Playwright's sync API runs an event loop on this thread; async_to_sync needs another one.
    thread = threading.Thread(target=fn, args=args)
    thread.start()
    thread.join(10)


def login(page, user):
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on", timeout=15000)


def test_markets_page_shows_watchlist_and_updates_live(page, shared_data_dir):
    user = UserFactory()
    services.candles_import_file(
        path=shared_data_dir / "ohlcv" / "binance_XRPETH_5m.csv.gz", symbol="XRP/ETH", timeframe="5m"
    )
    services.subscription_create(user=user, exchange="binance", symbol="XRP/ETH", timeframe="1h")
    market = Market.objects.get(symbol="XRP/ETH")
    login(page, user)
    page.goto("/markets/")
    row = page.locator(f"#watchlist tr[data-market-id='{market.id}']")
    expect(row.locator("[data-field=symbol]")).to_have_text("XRP/ETH", timeout=15000)
    expect(row.locator("[data-field=source]")).to_have_text("replay")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on", timeout=15000)
    in_thread(
        publish_event,
        user.id,
        "price",
        {"market_id": market.id, "exchange": "binance", "symbol": "XRP/ETH", "last": "0.00123456",
         "percentage": 2.5, "high": "0.0013", "low": "0.0011", "base_volume": 10.0, "source": "live",
         "timestamp": 1570752000000},
    )  # fmt: skip
    expect(row.locator("[data-field=last]")).to_have_text("0.00123456", timeout=10000)
    expect(row.locator("[data-field=percentage]")).to_have_text("+2.50 %")
    expect(row.locator("[data-field=source]")).to_have_text("live")

    # add a market through the form, then remove it
    page.fill("#watch-symbol", "ETH/BTC")
    page.click("#watch-form button[type=submit]")
    expect(page.locator("#watchlist tbody tr")).to_have_count(2, timeout=10000)
    page.locator("#watchlist tbody tr", has_text="ETH/BTC").locator("[data-action=remove]").click()
    expect(page.locator("#watchlist tbody tr")).to_have_count(1, timeout=10000)
    assert page.console_errors == []


def test_chart_page_draws_candles_switches_timeframe_and_updates_last_candle(page, shared_data_dir):
    user = UserFactory()
    services.candles_import_file(
        path=shared_data_dir / "ohlcv" / "binance_XRPETH_5m.csv.gz", symbol="XRP/ETH", timeframe="5m"
    )
    login(page, user)
    page.goto("/markets/chart/?exchange=binance&symbol=XRP/ETH&timeframe=5m")
    chart = page.locator("#chart")
    expect(chart.locator(".main-svg").first).to_be_visible(timeout=20000)
    # offline the chart shows stored candles up to the replayed moment, then follows the replay
    expect(page.locator("#chart-note")).to_contain_text("offline: replaying stored candles", timeout=10000)
    first_count = int(chart.get_attribute("data-count"))
    assert 0 < first_count <= 706
    expect(page.locator("#chart-source")).to_have_text("replay")
    expect(chart).to_have_attribute("data-last-update", re.compile(r"\d+"), timeout=15000)  # live last candle
    page.click(".md-tf[data-tf='1h']")
    expect(page.locator("#chart-note")).to_contain_text("built from stored 5m", timeout=10000)
    assert "timeframe=1h" in page.url
    assert 0 < int(chart.get_attribute("data-count")) <= 60
    assert page.console_errors == []
