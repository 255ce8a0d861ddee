"""In headless Chromium: a page whose socket dropped catches up on the events published while it
was down, without a reload (static/js/live.js resuming with ?after=N through daphne and Redis)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.core.events import publish_event
from tests.bots.test_browser import login
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

# Replaces the page's WebSocket so the test decides when it may reconnect, and records the URLs.
HOLD_SOCKETS = """
() => {
  const Real = window.WebSocket;
  window.__wsUrls = [];
  window.__holdSockets = true;
  window.WebSocket = function (url) {
    window.__wsUrls.push(url);
    // While held, point at a path the server has no socket for (same origin, so the page's CSP
    // allows it): the handshake fails and live.js backs off and retries.
    return new Real(window.__holdSockets ? url.replace("/ws/events/", "/ws/held/") : url);
  };
  window.WebSocket.prototype = Real.prototype;
}
"""


def order(order_id: int, status: str = "open") -> dict:
    return {
        "id": order_id,
        "client_order_id": f"manual-{order_id}",
        "bot_id": None,
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "limit",
        "amount": "0.01",
        "price": "50000",
        "stop_price": None,
        "status": status,
        "filled": "0",
        "average_price": None,
        "reason": "",
    }


def test_orders_page_catches_up_on_events_missed_while_its_socket_was_down(page):
    user = UserFactory()
    login(page, user)
    page.goto("/orders/")
    page.wait_for_function("() => window.Live && window.Live.connected && window.Live.sequence !== null")
    page.evaluate("window.__noReload = true")
    rows = page.locator("#orders tbody tr[data-order]")

    publish_event(user.pk, "order.created", order(9001))  # live, to check the page listens
    expect(page.locator('#orders tr[data-order="9001"]')).to_have_count(1, timeout=10000)
    seen = page.evaluate("window.Live.sequence")

    page.evaluate(HOLD_SOCKETS)
    page.evaluate("window.Live.drop()")
    page.wait_for_function("() => !window.Live.connected")
    page.wait_for_function("() => window.__wsUrls.length >= 1")  # it tried to reconnect, and failed
    publish_event(user.pk, "order.created", order(9002))
    publish_event(user.pk, "order.updated", order(9001, status="cancelled"))
    page.wait_for_timeout(300)
    expect(rows).to_have_count(1)  # nothing arrived while the socket was down

    page.evaluate("window.__holdSockets = false")
    page.wait_for_function("() => window.Live.connected", timeout=20000)
    expect(page.locator('#orders tr[data-order="9002"]')).to_have_count(1, timeout=10000)
    expect(page.locator('#orders tr[data-order="9001"] [data-field="status"]')).to_have_text(
        "Cancelled", timeout=10000
    )
    assert page.evaluate("window.Live.sequence") == seen + 2
    assert any(f"after={seen}" in url for url in page.evaluate("window.__wsUrls"))
    assert page.evaluate("window.__noReload") is True
    # Chromium logs the held attempts (to /ws/held/) as errors; anything else is a defect.
    errors = [e for e in page.console_errors if "/ws/held/" not in e]
    assert errors == [], errors
