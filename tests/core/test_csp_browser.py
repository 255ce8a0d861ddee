"""In headless Chromium through daphne: the dashboard's pages load under the Content-Security-Policy
(scripts from our own files only) with no violation, and Plotly draws its charts under it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.bots.test_browser import login
from tests.factories import EquitySnapshotFactory, UserFactory
from tests.support.owned import dashboard_pages, seed_owned_objects

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

# Collects every violation the browser reports, before any page script runs (an init script
# from the browser driver is not subject to the page's policy).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def test_dashboard_pages_load_with_no_csp_violation_and_plotly_draws(page, shared_data_dir):
    user = UserFactory(is_staff=True, is_superuser=True)
    objects = seed_owned_objects(user, shared_data_dir=shared_data_dir)
    for _ in range(5):
        EquitySnapshotFactory(owner=user)
    page.add_init_script(RECORD_VIOLATIONS)
    login(page, user)

    violations = {}
    for url in dashboard_pages(objects):
        response = page.goto(url)
        assert response.status < 400, (url, response.status)
        policy = response.headers.get("content-security-policy", "")
        assert (
            "script-src 'self'" in policy
            and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        )
        page.wait_for_load_state("networkidle")
        if url == f"/backtests/{objects['backtest'].pk}/":
            # Plotly's candlesticks and lines render under the policy (no eval needed).
            expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=15000)
        if url == "/api/docs/":
            expect(page.locator(".swagger-ui")).to_be_visible(timeout=15000)
        found = page.evaluate("window.__csp") + [
            error for error in page.console_errors if "Content Security Policy" in error
        ]
        if found:
            violations[url] = found
        page.console_errors.clear()
    assert violations == {}


def test_an_inline_script_is_blocked_and_reported(page):
    """The control: the policy does block inline code, and the recorder above sees it."""
    user = UserFactory()
    page.add_init_script(RECORD_VIOLATIONS)
    login(page, user)
    page.goto("/")
    page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.__ran = 1";
        document.body.append(s); }"""
    )
    page.wait_for_function("window.__csp.length > 0")
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in violation for violation in page.evaluate("window.__csp"))
