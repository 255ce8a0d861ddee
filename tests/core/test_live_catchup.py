"""Catching up after a reconnect, end to end: events published in this process go through
Redis (sequence, kept events, channels-redis) to a real daphne and a websockets client."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from rest_framework_simplejwt.tokens import AccessToken

from apps.core.events import publish_event
from tests.factories import UserFactory
from tests.support import aio

pytestmark = [pytest.mark.django_db(transaction=True)]


def ws_url(live_server_url: str, user, query: str = "") -> str:
    token = str(AccessToken.for_user(user))
    return f"{live_server_url.replace('http://', 'ws://')}/ws/events/?token={token}{query}"


async def connect(url: str):
    return await websockets.connect(url, origin="http://127.0.0.1")


async def receive(ws, count: int, timeout: float = 10.0) -> list[dict]:
    return [json.loads(await asyncio.wait_for(ws.recv(), timeout)) for _ in range(count)]


async def quiet(ws, seconds: float = 0.7) -> list[dict]:
    """Whatever arrives within ``seconds`` (heartbeats from a beat elsewhere are not sent here)."""
    got = []
    try:
        while True:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), seconds)))
    except TimeoutError:
        return got


async def publish(user_id: int, event_type: str, **payload) -> None:
    await asyncio.to_thread(publish_event, user_id, event_type, payload)


def test_events_have_the_envelope_and_increasing_sequences(live_server_url):
    user = UserFactory()

    async def scenario():
        ws = await connect(ws_url(live_server_url, user))
        [connected] = await receive(ws, 1)
        for i in range(5):
            await publish(user.pk, "order.updated", id=i)
        await publish(None, "price", symbol="BTC/USDT", last="100")
        got = await receive(ws, 6)
        await ws.close()
        return connected, got

    connected, got = aio.run(scenario())
    assert connected["type"] == "connected" and connected["payload"]["user"] == user.pk
    for event in got:
        assert list(event) == ["type", "time", "payload", "sequence"]
        assert event["time"].endswith("Z") and "T" in event["time"]
    # Events for everybody take their own path (one Redis publish per server): no order against a user's.
    orders = [e for e in got if e["type"] == "order.updated"]
    [price] = [e for e in got if e["type"] == "price"]
    assert [e["payload"]["id"] for e in orders] == [0, 1, 2, 3, 4]
    sequences = [e["sequence"] for e in orders]
    assert sequences == list(range(sequences[0], sequences[0] + 5))
    assert sequences[0] > connected["payload"]["sequence"]
    assert price["type"] == "price" and price["sequence"] is None


def test_reconnect_with_after_replays_missed_events_in_order_without_duplicates(live_server_url):
    user = UserFactory()

    async def scenario():
        ws = await connect(ws_url(live_server_url, user))
        await receive(ws, 1)
        await publish(user.pk, "order.created", id=1)
        [seen] = await receive(ws, 1)
        await ws.close()
        for i in (2, 3, 4):
            await publish(user.pk, "order.updated", id=i)
        ws = await connect(ws_url(live_server_url, user, f"&after={seen['sequence']}"))
        caught_up = await receive(ws, 4)
        await publish(user.pk, "order.updated", id=5)
        rest = await quiet(ws)
        await ws.close()
        return seen, caught_up, rest

    seen, caught_up, rest = aio.run(scenario())
    assert caught_up[0]["type"] == "connected"
    replayed = caught_up[1:] + rest
    assert [(e["payload"]["id"], e["sequence"]) for e in replayed] == [
        (i, seen["sequence"] + i - 1) for i in (2, 3, 4, 5)
    ]


def test_a_gap_older_than_what_is_kept_gets_live_reset(live_server_url, settings):
    settings.EVENTS_REPLAY_MAX = 3  # the publisher (this process) trims the kept list
    user = UserFactory()

    async def scenario():
        ws = await connect(ws_url(live_server_url, user))
        [connected] = await receive(ws, 1)
        await ws.close()
        for i in range(6):
            await publish(user.pk, "order.updated", id=i)
        ws = await connect(ws_url(live_server_url, user, f"&after={connected['payload']['sequence']}"))
        got = await receive(ws, 2)
        rest = await quiet(ws)
        await ws.close()
        return got, rest

    (connected, reset), rest = aio.run(scenario())
    assert reset["type"] == "live.reset" and reset["payload"]["reason"] == "gap"
    assert reset["payload"]["sequence"] == connected["payload"]["sequence"]
    assert rest == []  # no partial replay after a reset


def test_another_user_can_never_resume_someone_elses_stream(live_server_url):
    owner, intruder = UserFactory(), UserFactory()

    async def scenario():
        ws = await connect(ws_url(live_server_url, owner))
        await receive(ws, 1)
        await ws.close()
        await publish(owner.pk, "order.created", id="owner-secret")
        await publish(owner.pk, "order.created", id="owner-secret-2")
        seen = []
        # Every way a client could name a stream: numbers from the owner's stream, a user parameter.
        for query in ("&after=0", f"&after=1&user={owner.pk}", f"&user_id={owner.pk}"):
            other = await connect(ws_url(live_server_url, intruder, query))
            await other.send(json.dumps({"type": "resume", "after": 0, "user": owner.pk}))
            seen += await quiet(other)
            await other.close()
        return seen

    seen = aio.run(scenario())
    assert {e["payload"].get("user") for e in seen if e["type"] == "connected"} == {intruder.pk}
    assert "owner-secret" not in json.dumps(seen)
