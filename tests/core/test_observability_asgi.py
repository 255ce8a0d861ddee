"""Observability under daphne (how production serves): request ids and users on the log lines
(Django's own "Not Found" line too, which ASGI writes after the middleware has returned),
route metrics, the WebSocket gauge, and no JWT in the logs from a header or a query string."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest
import websockets
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework_simplejwt.tokens import AccessToken

from tests.factories import UserFactory
from tests.support import aio, servers

# Starts its own process: grouped with the other real-process tests under xdist (tests/conftest.py).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.xdist_group("real_services"),
]

TOKEN = "asgi-metrics-token-5d1e"


@pytest.fixture
def server(tmp_path):
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (a real Redis); .ci/run sets it")
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL; .ci/run sets it")
    log_path = tmp_path / "daphne.log"
    with servers.asgi_server(log_path=log_path, env={"METRICS_TOKEN": TOKEN, "LOG_FORMAT": "json"}) as url:
        yield url, log_path


def get(url: str, **headers: str) -> tuple[int, object, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()  # case-insensitive
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    status, _headers, body = get(f"{base}/metrics", Authorization=f"Bearer {TOKEN}")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_request_ids_users_routes_and_websockets_under_daphne(server):
    base, log_path = server
    user = UserFactory()
    jwt = str(AccessToken.for_user(user))
    auth = {"Authorization": f"Bearer {jwt}"}

    status, headers, _ = get(f"{base}/api/v1/orders/987654321/", **auth, **{"X-Request-ID": "asgi-404"})
    assert (status, headers.get("X-Request-ID")) == (404, "asgi-404")
    status, headers, _ = get(f"{base}/api/v1/auth/me/", **auth)
    assert status == 200 and len(headers.get("X-Request-ID")) == 32
    assert get(f"{base}/metrics")[0] == 401

    async def with_socket():
        url = base.replace("http://", "ws://") + f"/ws/events/?token={jwt}"
        async with websockets.connect(url, origin="http://127.0.0.1") as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            return await asyncio.to_thread(scrape, base)

    during = aio.run(with_socket())
    assert during[("trading_websocket_connections", ())] == 1
    route = (("method", "GET"), ("route", "orders-api:order-detail"), ("status", "404"))
    assert during[("trading_http_requests_total", route)] == 1
    deadline = time.monotonic() + 10
    while scrape(base)[("trading_websocket_connections", ())] != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert scrape(base)[("trading_websocket_connections", ())] == 0

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    ours = [r for r in lines if r["request_id"] == "asgi-404"]
    loggers = {r["logger"] for r in ours}
    assert {"trading.access", "django.request"} <= loggers, ours
    assert all(r["user_id"] == user.pk for r in ours if r["logger"] in {"trading.access", "django.request"})
    me = [r for r in lines if r["logger"] == "trading.access" and r["path"] == "/api/v1/auth/me/"]
    assert me and me[0]["user_id"] == user.pk
    assert jwt not in log_path.read_text()
