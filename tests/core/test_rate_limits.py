"""API rate limits (apps.core.api.throttling): scopes, X-RateLimit-* headers, the 429 answer.

The suite's settings default every scope to a rate it never reaches; these tests set real
rates with the settings fixture, and stop the throttle's clock (``throttle_clock``) so that no
window ends mid-test. Throttling state lives in the cache (Redis with REDIS_URL, which outlives
a test database), so each test first forgets its identities' counts.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import uuid
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from apps.core.api.throttling import SCOPES, ApiRateThrottle, rate_window, throttle_reset
from tests.factories import UserFactory
from tests.support.api import assert_error

ORDERS = "/api/v1/orders/"
BACKTESTS = "/api/v1/backtests/"
ROOT = "/api/v1/"


def forget(ident: str) -> None:
    for scope in SCOPES:
        throttle_reset(scope=scope, ident=ident)


@pytest.fixture
def client_for(db, throttle_clock):
    def make(user=None) -> APIClient:
        user = user or UserFactory()
        forget(f"user{user.pk}")
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


def rate_headers(response) -> tuple[int, int, int]:
    return (
        int(response["X-RateLimit-Limit"]),
        int(response["X-RateLimit-Remaining"]),
        int(response["X-RateLimit-Reset"]),
    )


def test_every_answer_carries_the_limit_and_the_remaining_count_counts_down(
    client_for, settings, throttle_clock
):
    settings.USER_THROTTLE_RATE = "5/minute"
    client = client_for()
    seen = []
    for _ in range(5):
        response = client.get(ORDERS)
        assert response.status_code == 200
        seen.append(rate_headers(response))
    assert [limit for limit, _, _ in seen] == [5] * 5
    assert [remaining for _, remaining, _ in seen] == [4, 3, 2, 1, 0]
    # Reset: the end of the window, within the minute.
    resets = {reset for _, _, reset in seen}
    assert len(resets) == 1
    assert throttle_clock.now < resets.pop() <= throttle_clock.now + 60


def test_when_the_window_ends_the_full_limit_is_back(client_for, settings, throttle_clock):
    settings.USER_THROTTLE_RATE = "2/minute"
    client = client_for()
    client.get(ORDERS)
    reset = rate_headers(client.get(ORDERS))[2]
    assert_error(client.get(ORDERS), 429, "throttled")
    # Windows are offset per identity, so the end may be any time in the next minute.
    early = min(0.5, (reset - throttle_clock.now) / 2)
    throttle_clock.advance(reset - throttle_clock.now - early)
    assert_error(client.get(ORDERS), 429, "throttled")  # just before the end
    throttle_clock.advance(early)
    response = client.get(ORDERS)
    assert response.status_code == 200
    assert rate_headers(response) == (2, 1, reset + 60)


def test_past_the_limit_the_answer_is_429_with_retry_after_and_the_error_body(
    client_for, settings, throttle_clock
):
    settings.USER_THROTTLE_RATE = "2/minute"
    client = client_for()
    assert client.get(ORDERS).status_code == 200
    assert client.get(ORDERS).status_code == 200
    response = client.get(ORDERS)
    error = assert_error(response, 429, "throttled")
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["fields"]["retry_after_seconds"] == retry_after
    limit, remaining, reset = rate_headers(response)
    assert (limit, remaining) == (2, 0)
    assert retry_after == math.ceil(reset - throttle_clock.now)
    # Asking again, later in the same window, does not move the window's end.
    throttle_clock.advance(min(1, (reset - throttle_clock.now) / 2))
    again = client.get(ORDERS)
    assert again.status_code == 429 and rate_headers(again)[2] == reset
    assert int(again["Retry-After"]) == math.ceil(reset - throttle_clock.now)


def test_concurrent_requests_never_get_past_the_limit(db, settings, throttle_clock):
    """Each request is one atomic increment in the cache (Redis with REDIS_URL): exact under threads."""
    settings.USER_THROTTLE_RATE = "5/minute"
    user = UserFactory()
    forget(f"user{user.pk}")
    request = SimpleNamespace(method="GET", user=user, _request=SimpleNamespace())
    barrier = threading.Barrier(16)
    allowed = []

    def hit() -> None:
        barrier.wait()
        allowed.append(ApiRateThrottle().allow_request(request, SimpleNamespace()))

    threads = [threading.Thread(target=hit) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(allowed) == [False] * 11 + [True] * 5


def test_each_user_has_a_budget_of_their_own(client_for, settings):
    settings.USER_THROTTLE_RATE = "1/minute"
    first, second = client_for(), client_for()
    assert first.get(ORDERS).status_code == 200
    assert_error(first.get(ORDERS), 429, "throttled")
    assert second.get(ORDERS).status_code == 200


def test_placing_orders_counts_against_the_stricter_trading_rate(client_for, settings):
    settings.USER_THROTTLE_RATE = "100/minute"
    settings.TRADING_THROTTLE_RATE = "2/minute"
    client = client_for()
    for expected_remaining in (1, 0):
        # The throttle runs before the input is read: an invalid order counts too.
        response = client.post(ORDERS, {})
        assert response.status_code == 400
        assert rate_headers(response)[:2] == (2, expected_remaining)
    assert_error(client.post(ORDERS, {}), 429, "throttled")
    assert_error(client.post(f"{ORDERS}cancel-all/", {}), 429, "throttled")
    # Reading is another scope, with its own, larger budget.
    response = client.get(ORDERS)
    assert response.status_code == 200
    assert rate_headers(response)[:2] == (100, 99)


def test_submitting_research_jobs_counts_against_the_research_rate(client_for, settings):
    settings.RESEARCH_THROTTLE_RATE = "1/minute"
    settings.TRADING_THROTTLE_RATE = "50/minute"
    client = client_for()
    assert client.post(BACKTESTS, {}).status_code == 400
    assert_error(client.post(BACKTESTS, {}), 429, "throttled")
    assert_error(client.post("/api/v1/backtests/optimizations/", {}), 429, "throttled")
    assert client.get(BACKTESTS).status_code == 200  # listing is not submitting
    assert client.post(ORDERS, {}).status_code == 400  # trading keeps its own budget


def test_anonymous_requests_are_limited_per_client_address(api_client, settings, throttle_clock):
    settings.ANON_THROTTLE_RATE = "2/minute"
    first, second = (f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{n}" for n in (21, 22))
    forget(first)
    forget(second)
    for remaining in (1, 0):
        response = api_client.get(ROOT, REMOTE_ADDR=first)
        assert response.status_code == 200
        assert rate_headers(response)[:2] == (2, remaining)
    assert_error(api_client.get(ROOT, REMOTE_ADDR=first), 429, "throttled")
    assert api_client.get(ROOT, REMOTE_ADDR=second).status_code == 200


def test_login_is_limited_per_address_whoever_signs_in(db, api_client, password, settings, throttle_clock):
    settings.LOGIN_THROTTLE_RATE = "2/minute"
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.23"
    forget(address)
    for user in UserFactory.create_batch(2):
        response = api_client.post(
            "/api/v1/auth/token/", {"email": user.email, "password": password}, REMOTE_ADDR=address
        )
        assert response.status_code == 200
        assert int(response["X-RateLimit-Limit"]) == 2
    other = UserFactory()
    response = api_client.post(
        "/api/v1/auth/token/", {"email": other.email, "password": password}, REMOTE_ADDR=address
    )
    assert_error(response, 429, "throttled")
    assert response["Retry-After"]


def test_an_empty_rate_turns_a_scope_off(client_for, settings):
    settings.USER_THROTTLE_RATE = ""
    client = client_for()
    for _ in range(3):
        response = client.get(ORDERS)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response


def test_dashboard_pages_are_not_throttled(settings, user, throttle_clock):
    settings.USER_THROTTLE_RATE = "1/minute"
    client = APIClient()
    client.force_login(user)
    for _ in range(2):
        response = client.get("/orders/")
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response


def _settings_in_a_fresh_process(**env: str) -> dict:
    """The throttle settings as a process outside the test suite (no DJANGO_ENV=test) reads them."""
    child = {k: v for k, v in os.environ.items() if not k.endswith("_THROTTLE_RATE")}
    child.update(DJANGO_ENV="development", **env)
    code = (
        "import json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'\n"
        "from django.conf import settings\n"
        "print(json.dumps({s: getattr(settings, s.upper() + '_THROTTLE_RATE') for s in "
        f"{sorted(SCOPES)!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=child, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _per_minute(rate: str) -> float:
    count, period = rate.split("/")
    return int(count) * 60 / {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


def test_default_rates_are_stricter_for_credentials_trading_and_research_and_set_by_environment():
    defaults = _settings_in_a_fresh_process()
    user = _per_minute(defaults["user"])
    for scope in ("login", "trading", "research", "anon"):
        assert _per_minute(defaults[scope]) < user, (scope, defaults)
    configured = _settings_in_a_fresh_process(TRADING_THROTTLE_RATE="7/second", USER_THROTTLE_RATE="")
    assert configured["trading"] == "7/second"
    assert configured["user"] == ""  # off
    assert configured["research"] == defaults["research"]


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_documents_the_headers_and_each_operations_scope(schema):
    post = schema["paths"][ORDERS]["post"]["responses"]
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(post["201"]["headers"])
    assert "Retry-After" in post["429"]["headers"]
    assert "Retry-After" not in post["201"]["headers"]
    assert "(trading)" in post["429"]["description"]
    assert "(user)" in schema["paths"][ORDERS]["get"]["responses"]["429"]["description"]
    assert "(research)" in schema["paths"][BACKTESTS]["post"]["responses"]["429"]["description"]
    assert "(login)" in schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]["429"]["description"]
    assert (
        "(signal)" in schema["paths"]["/api/v1/signals/{token}/"]["post"]["responses"]["429"]["description"]
    )
    for methods in schema["paths"].values():
        for operation in methods.values():
            assert "429" in operation["responses"]


def test_the_headers_come_through_the_asgi_server_with_the_redis_cache(live_server_url):
    """The web server (manage.py serve; DJANGO_ENV=test, its generous rate) counts in the shared
    Redis cache: the pytest process, a web process like any other, sees the same window."""
    import urllib.request

    address = "127.0.0.1"  # the server's client address for this test's requests

    def get() -> tuple[int, int, int]:
        with urllib.request.urlopen(f"{live_server_url}{ROOT}", timeout=10) as response:
            assert response.status == 200
            return rate_headers(response.headers)

    # The server's clock runs: two requests straddling its window's end would start over, so retry
    # (at most twice) until two consecutive answers share a window.
    for _ in range(3):
        first, second = get(), get()
        if first[2] == second[2]:
            break
    limit, remaining, reset = second
    assert remaining == first[1] - 1 and limit > first[1]
    key, window_end = rate_window("anon", address, 60, reset - 1)
    assert window_end == reset
    assert cache.get(key) == limit - remaining  # the server's count, read by this process


def test_the_web_server_does_not_take_the_client_address_from_x_forwarded_for(live_server_url):
    """uvicorn would rewrite the client address from X-Forwarded-For for a local peer; the
    platform's server leaves it to Django's NUM_PROXIES (0 in tests): a header cannot move a
    client to another address's rate-limit count."""
    import urllib.request

    def remaining(forwarded: str | None) -> tuple[int, int]:
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        request = urllib.request.Request(f"{live_server_url}{ROOT}", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            _limit, left, reset = rate_headers(response.headers)
            return left, reset

    for _ in range(3):  # two answers in one window (the server's clock runs)
        (first, reset_1), (second, reset_2) = (
            remaining(None),
            remaining(f"203.0.113.{uuid.uuid4().int % 250}"),
        )
        if reset_1 == reset_2:
            break
    assert second == first - 1  # the forged address counted as the peer's own
