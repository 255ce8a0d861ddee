"""``/metrics``: refused without its token, off without one configured, and every family there.

Counters are read through a real scrape (the exposition text parsed by prometheus_client),
before and after the thing that should move them.
"""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from prometheus_client.parser import text_string_to_metric_families

from apps.core.consumers import EventsConsumer
from tests.factories import OrderFactory
from tests.support import aio

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-8f2c"
FAMILIES = {
    "trading_http_requests",
    "trading_http_request_duration_seconds",
    "trading_celery_tasks",
    "trading_celery_task_duration_seconds",
    "trading_celery_task_queue_wait_seconds",
    "trading_celery_queue_length",
    "trading_bot_ticks",
    "trading_bot_tick_duration_seconds",
    "trading_bot_tick_lag_seconds",
    "trading_orders",
    "trading_websocket_connections",
}


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.PROMETHEUS_MULTIPROC_DIR = ""
    return TOKEN


def scrape(client, token: str = TOKEN) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def value(families: dict, family: str, sample: str | None = None, **labels: str) -> float:
    """The value of ``sample`` (default: the family's own) with exactly these labels (0 if absent)."""
    for s in families[family].samples:
        if s.name == (sample or family) and s.labels == labels:
            return s.value
    return 0.0


def test_without_a_configured_token_the_endpoint_is_off(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "header", [None, "", f"Token {TOKEN}", "Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}"]
)
def test_without_the_token_a_scrape_is_refused(client, token, header):
    headers = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert b"trading_" not in response.content


def test_a_scrape_with_the_token_shows_every_family(client, token):
    families = scrape(client)
    assert set(families) >= FAMILIES, FAMILIES - set(families)


def test_a_request_increments_its_route_counter_and_latency(client, token):
    before = scrape(client)
    client.get("/health/")
    client.get("/health/")
    after = scrape(client)
    labels = {"route": "core:health", "method": "GET", "status": "200"}
    total = "trading_http_requests_total"
    assert (
        value(after, "trading_http_requests", total, **labels)
        - value(before, "trading_http_requests", total, **labels)
        == 2
    )
    count = "trading_http_request_duration_seconds_count"
    latency = {"route": "core:health", "method": "GET"}
    assert (
        value(after, "trading_http_request_duration_seconds", count, **latency)
        - value(before, "trading_http_request_duration_seconds", count, **latency)
        == 2
    )


def test_routes_are_pattern_names_never_raw_paths(client, token, user):
    secret = "z" * 43
    client.post(f"/api/v1/signals/{secret}/", {}, content_type="application/json")
    client.get("/no/such/page/")
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    text = response.content.decode()
    assert secret not in text and "/no/such/page/" not in text
    families = scrape(client)
    routes = {s.labels.get("route") for s in families["trading_http_requests"].samples}
    assert {"signals-api:receive", "unmatched"} <= routes


def test_orders_are_counted_by_status_when_scraped(client, token, user):
    before = scrape(client)
    OrderFactory(owner=user, status="open")
    OrderFactory(owner=user, status="open")
    OrderFactory(owner=user, status="filled")
    after = scrape(client)
    assert value(after, "trading_orders", status="open") - value(before, "trading_orders", status="open") == 2
    assert (
        value(after, "trading_orders", status="filled") - value(before, "trading_orders", status="filled")
        == 1
    )
    # Every status is there, 0 included.
    assert {s.labels["status"] for s in after["trading_orders"].samples} >= {
        "pending",
        "cancelled",
        "rejected",
    }


def test_queue_lengths_are_read_from_the_broker(client, token, settings):
    # A queue no worker consumes: the message waits there until the test removes it.
    from celery import current_app

    queue = "metrics-test-queue"
    settings.CELERY_WORKER_QUEUES = [*settings.CELERY_WORKER_QUEUES, queue]
    with current_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue) if _declared(connection, queue) else None
        before = value(scrape(client), "trading_celery_queue_length", queue=queue)
        current_app.send_task("apps.core.tasks.heartbeat", queue=queue)
        current_app.send_task("apps.core.tasks.heartbeat", queue=queue)
        try:
            after = value(scrape(client), "trading_celery_queue_length", queue=queue)
        finally:
            connection.default_channel.queue_purge(queue)
    assert (before, after) == (0, 2)


def _declared(connection, queue: str) -> bool:
    from kombu.exceptions import ChannelError

    try:
        connection.default_channel.queue_declare(queue=queue, passive=True)
        return True
    except ChannelError:
        return False


def test_open_websocket_connections_are_counted(client, token, user):
    async def session():
        communicator = WebsocketCommunicator(EventsConsumer.as_asgi(), "/ws/events/")
        communicator.scope["user"] = user
        connected, _ = await communicator.connect()
        assert connected
        return communicator

    async def anonymous():
        communicator = WebsocketCommunicator(EventsConsumer.as_asgi(), "/ws/events/")
        communicator.scope["user"] = AnonymousUser()
        await communicator.connect()
        await communicator.receive_output()  # closed with 4401: never counted
        return communicator

    def gauge() -> float:
        return value(scrape(client), "trading_websocket_connections")

    async def scenario():
        first, second = await session(), await session()
        await anonymous()
        from asgiref.sync import sync_to_async

        during = await sync_to_async(gauge)()
        await first.disconnect()
        await second.disconnect()
        return during

    before = gauge()
    during = aio.run(scenario())
    assert (during - before, gauge() - before) == (2, 0)
