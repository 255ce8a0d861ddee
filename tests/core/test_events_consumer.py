"""The ``/ws/events/`` consumer's sequence and catch-up rules, in the embedded mode
(in-memory channel layer, in-process event stream): runs without any service.

The same rules over Redis and a real daphne: tests/core/test_live_catchup.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from apps.core.consumers import EventsConsumer
from apps.core.event_stream import event_stream
from apps.core.events import _envelope_parts, events_batched, publish_event
from tests.factories import UserFactory
from tests.support import aio

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def embedded(settings):
    settings.REDIS_URL = ""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "apps.core.channel_layer.ThreadSafeInMemoryChannelLayer"}
    }


def communicator(user, query: str = "") -> WebsocketCommunicator:
    socket = WebsocketCommunicator(EventsConsumer.as_asgi(), "/ws/events/" + query)
    socket.scope["user"] = user
    return socket


async def publish(user_id, event_type: str, **payload) -> None:
    # From a thread without a loop, as a view, a service or a Celery task publishes.
    await asyncio.to_thread(publish_event, user_id, event_type, payload)


async def events(socket, count: int) -> list[dict]:
    return [json.loads(await socket.receive_from(timeout=3)) for _ in range(count)]


async def nothing_more(socket) -> bool:
    return await socket.receive_nothing(timeout=0.3)


def test_every_event_has_the_envelope_and_a_user_sequence_in_order():
    user = UserFactory()

    async def scenario():
        socket = communicator(user)
        assert (await socket.connect())[0]
        [connected] = await events(socket, 1)
        assert connected["type"] == "connected" and connected["sequence"] is None
        assert connected["payload"] == {"user": user.pk, "sequence": event_stream().current(user.pk)}
        for i in range(3):
            await publish(user.pk, "order.updated", id=i)
        await publish(user.pk, "price", symbol="BTC/USDT", last="1")
        got = await events(socket, 4)
        await socket.disconnect()
        return got

    got = aio.run(scenario())
    assert [set(e) for e in got] == [{"type", "time", "sequence", "payload"}] * 4
    sequences = [e["sequence"] for e in got[:3]]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    assert [e["payload"]["id"] for e in got[:3]] == [0, 1, 2]
    assert got[3]["type"] == "price" and got[3]["sequence"] is None  # prices: the latest wins, unnumbered


def test_resume_after_a_disconnect_replays_the_missed_events_in_order_once():
    user = UserFactory()

    async def scenario():
        socket = communicator(user)
        await socket.connect()
        await events(socket, 1)
        await publish(user.pk, "order.created", id=1)
        [seen] = await events(socket, 1)
        await socket.disconnect()
        for i in (2, 3, 4):
            await publish(user.pk, "order.updated", id=i)
        await publish(user.pk, "heartbeat", server_time="x")  # unnumbered: not kept, not replayed
        again = communicator(user, f"?after={seen['sequence']}")
        await again.connect()
        got = await events(again, 4)
        assert await nothing_more(again)
        await publish(user.pk, "order.updated", id=5)
        [live] = await events(again, 1)
        await again.disconnect()
        return seen, got, live

    seen, got, live = aio.run(scenario())
    assert got[0]["type"] == "connected"
    assert [(e["payload"]["id"], e["sequence"]) for e in got[1:]] == [
        (i, seen["sequence"] + i - 1) for i in (2, 3, 4)
    ]
    assert (live["payload"]["id"], live["sequence"]) == (5, seen["sequence"] + 4)


def test_resume_message_works_like_the_query_string():
    user = UserFactory()

    async def scenario():
        socket = communicator(user)
        await socket.connect()
        [connected] = await events(socket, 1)
        await socket.disconnect()
        await publish(user.pk, "order.created", id=1)
        await publish(user.pk, "order.created", id=2)
        again = communicator(user)
        await again.connect()
        await events(again, 1)
        await again.send_json_to({"type": "resume", "after": connected["payload"]["sequence"]})
        got = await events(again, 2)
        await again.disconnect()
        return got

    assert [e["payload"]["id"] for e in aio.run(scenario())] == [1, 2]


def test_a_gap_longer_than_what_is_kept_gets_one_live_reset(settings):
    settings.EVENTS_REPLAY_MAX = 2
    user = UserFactory()

    async def scenario():
        await publish(user.pk, "order.created", id=0)
        first = event_stream().current(user.pk)
        for i in range(1, 5):
            await publish(user.pk, "order.updated", id=i)
        socket = communicator(user, f"?after={first}")
        await socket.connect()
        got = await events(socket, 2)
        assert await nothing_more(socket)
        await publish(user.pk, "order.updated", id=5)
        [live] = await events(socket, 1)
        await socket.disconnect()
        return first, got, live

    first, got, live = aio.run(scenario())
    assert got[0]["type"] == "connected"
    reset = got[1]
    assert reset["type"] == "live.reset" and reset["sequence"] is None
    assert reset["payload"] == {"reason": "gap", "sequence": first + 4}
    assert live["sequence"] == first + 5


def test_a_sequence_ahead_of_the_stream_gets_a_live_reset():
    """A client that saw numbers this server never handed out (its stream was lost)."""
    user = UserFactory()

    async def scenario():
        socket = communicator(user, "?after=99999999999999")
        await socket.connect()
        got = await events(socket, 2)
        await socket.disconnect()
        return got

    assert aio.run(scenario())[1]["payload"]["reason"] == "unknown"


def test_a_hole_in_what_the_layer_delivered_is_filled_from_the_kept_events():
    """Two publishers racing (or a send the layer dropped): the socket still sends every number once, in order."""
    user = UserFactory()

    async def scenario():
        socket = communicator(user)
        await socket.connect()
        await events(socket, 1)
        # Numbered and kept, but never sent through the layer.
        event_stream().append(user.pk, *_envelope_parts("order.created", {"id": "lost"}))
        await publish(user.pk, "order.updated", id="next")
        got = await events(socket, 2)
        await socket.disconnect()
        return got

    got = aio.run(scenario())
    assert [e["payload"]["id"] for e in got] == ["lost", "next"]
    assert got[1]["sequence"] == got[0]["sequence"] + 1


@pytest.mark.parametrize("how", ["query", "message"])
def test_a_user_can_only_resume_their_own_stream(how):
    owner, other = UserFactory(), UserFactory()

    async def scenario():
        await publish(owner.pk, "order.created", id="secret")
        owner_sequence = event_stream().current(owner.pk)
        query = f"?after=0&user={owner.pk}" if how == "query" else f"?user={owner.pk}"
        socket = communicator(other, query)
        await socket.connect()
        [connected] = await events(socket, 1)
        if how == "message":
            await socket.send_json_to({"type": "resume", "after": 0, "user": owner.pk})
        rest = []
        while not await socket.receive_nothing(timeout=0.3):
            rest.append(json.loads(await socket.receive_from()))
        await socket.disconnect()
        return owner_sequence, connected, rest

    owner_sequence, connected, rest = aio.run(scenario())
    assert connected["payload"]["user"] == other.pk
    assert connected["payload"]["sequence"] != owner_sequence
    # The other user's own (empty) stream: nothing to replay for after=0, and never the owner's events.
    assert all(e["type"] == "live.reset" for e in rest)
    assert "secret" not in json.dumps(rest)


def test_anonymous_sockets_are_closed():
    from django.contrib.auth.models import AnonymousUser

    async def scenario():
        socket = communicator(AnonymousUser(), "?after=0")
        await socket.connect()
        output = await socket.receive_output(timeout=3)
        await socket.wait()
        return output

    assert aio.run(scenario()) == {"type": "websocket.close", "code": 4401}


def test_a_batch_of_events_reaches_the_socket_one_envelope_each_in_order():
    user = UserFactory()

    def publish_batch() -> None:
        with events_batched():
            for i in range(3):
                publish_event(user.pk, "order.updated", {"id": i})

    async def scenario():
        socket = communicator(user)
        await socket.connect()
        await events(socket, 1)  # connected
        await asyncio.to_thread(publish_batch)
        got = await events(socket, 3)
        assert await nothing_more(socket)
        await socket.disconnect()
        return got

    got = aio.run(scenario())
    assert [e["payload"]["id"] for e in got] == [0, 1, 2]
    first = got[0]["sequence"]
    assert [e["sequence"] for e in got] == [first, first + 1, first + 2]
