"""The live path end to end: a Celery task on a real worker (Redis) publishes an event
that a real WebSocket client receives through a running ASGI server."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
import websockets.exceptions
from rest_framework_simplejwt.tokens import AccessToken

from apps.core.tasks import heartbeat
from tests.factories import PASSWORD, UserFactory
from tests.support import aio

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def ws_url(live_server_url: str, query: str = "") -> str:
    return live_server_url.replace("http://", "ws://") + "/ws/events/" + query


async def receive_until(ws, event_type: str, timeout: float = 15.0) -> dict:
    async def loop():
        while True:
            event = json.loads(await ws.recv())
            if event["type"] == event_type:
                return event

    return await asyncio.wait_for(loop(), timeout)


def test_task_on_real_worker_reaches_websocket_client_with_jwt(celery_worker, live_server_url):
    user = UserFactory()
    other = UserFactory()
    token = str(AccessToken.for_user(user))
    other_token = str(AccessToken.for_user(other))

    async def scenario():
        async with (
            websockets.connect(ws_url(live_server_url, f"?token={token}"), origin="http://127.0.0.1") as ws,
            websockets.connect(
                ws_url(live_server_url, f"?token={other_token}"), origin="http://127.0.0.1"
            ) as other_ws,
        ):
            assert (await receive_until(ws, "connected"))["payload"]["user"] == user.pk
            await receive_until(other_ws, "connected")
            # Enqueued on Redis; only the worker process can run it (no eager mode, no beat here).
            await asyncio.to_thread(heartbeat.delay, user_id=user.pk)
            event = await receive_until(ws, "heartbeat")
            assert event["payload"]["server_time"]
            # Per-user groups: the other user's socket does not get it.
            with pytest.raises(TimeoutError):
                await receive_until(other_ws, "heartbeat", timeout=1.5)
            await ws.send(json.dumps({"type": "ping"}))
            assert (await receive_until(ws, "pong"))["type"] == "pong"

    aio.run(scenario())


def test_websocket_accepts_session_cookie(live_server_url):
    from django.test import Client

    user = UserFactory()
    client = Client()
    assert client.login(email=user.email, password=PASSWORD)
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    async def scenario():
        async with websockets.connect(
            ws_url(live_server_url), origin="http://127.0.0.1", additional_headers={"Cookie": cookie}
        ) as ws:
            assert (await receive_until(ws, "connected"))["payload"]["user"] == user.pk

    aio.run(scenario())


@pytest.mark.parametrize("query", ["", "?token=garbage"])
def test_websocket_refuses_anonymous_and_bad_tokens(live_server_url, query):
    async def scenario():
        async with websockets.connect(ws_url(live_server_url, query), origin="http://127.0.0.1") as ws:
            await ws.recv()

    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        aio.run(scenario())
    assert closed.value.rcvd.code == 4401


def test_health_ready_is_green_with_postgres_redis_and_worker(celery_worker, live_server_url):
    import urllib.error
    import urllib.request

    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"{live_server_url}/health/ready/", timeout=10) as response:
            report, status = json.loads(response.read()), response.status
    except urllib.error.HTTPError as error:
        report, status = json.loads(error.read()), error.code
    assert status == 200, report
    # The worker's answer ends the ping: a probe does not wait out the 1.5 s ping timeout.
    assert report["checks"]["celery"]["ms"] < 1000 and time.monotonic() - started < 1.4, report
    assert report["status"] == "ok"
    assert set(report["checks"]) == {"database", "redis", "channel_layer", "celery"}
    assert report["checks"]["database"]["detail"] == "postgresql"
    assert all(check["ok"] for check in report["checks"].values())
