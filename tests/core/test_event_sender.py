"""Sync code's channel-layer sends (apps.core.events._SenderLoop): one loop and its connections per
process, delivered in order, from plain threads and from threads that run a loop themselves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from apps.core.event_stream import event_stream
from apps.core.events import events_batched, publish_event, user_group


def received(layer, channel: str, count: int) -> list[dict]:
    async def read() -> list[dict]:
        return [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(count)]

    return async_to_sync(read)()


@pytest.fixture
def listening(user):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(user.pk), channel)
    yield layer, channel
    async_to_sync(layer.group_discard)(user_group(user.pk), channel)


def test_events_from_sync_code_arrive_in_order(user, listening):
    layer, channel = listening
    for n in range(20):
        publish_event(user.pk, "order.updated", {"n": n})
    messages = received(layer, channel, 20)
    assert [json.loads(m["text"])["payload"]["n"] for m in messages] == list(range(20))
    sequences = [m["sequence"] for m in messages]
    assert sequences == sorted(sequences) and len(set(sequences)) == 20


def test_a_thread_running_its_own_loop_can_publish(user, listening):
    layer, channel = listening
    errors = []

    def in_a_loop() -> None:
        async def main() -> None:
            publish_event(user.pk, "order.updated", {"n": "from a loop"})  # sync call inside a loop

        try:
            asyncio.run(main())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=in_a_loop)
    thread.start()
    thread.join(10)
    assert not errors
    assert json.loads(received(layer, channel, 1)[0]["text"])["payload"] == {"n": "from a loop"}


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (a real Redis); .ci/run sets it")
def test_sends_reuse_the_processes_redis_connections(user, listening):
    """async_to_sync opened a new event loop, and channels-redis a new connection, for every event."""
    import redis

    layer, channel = listening
    client = redis.Redis.from_url(settings.REDIS_URL)
    publish_event(user.pk, "order.updated", {"n": 0})
    before = client.info("stats")["total_connections_received"]
    for n in range(30):
        publish_event(user.pk, "order.updated", {"n": n + 1})
    opened = client.info("stats")["total_connections_received"] - before
    received(layer, channel, 31)
    assert opened <= 2, f"{opened} Redis connections opened for 30 events"


def _payloads(message: dict) -> list:
    return [json.loads(text)["payload"]["n"] for text, _sequence in message["events"]]


def test_a_batch_goes_out_as_one_message_numbered_in_order_when_its_block_ends(user, listening):
    layer, channel = listening
    before = event_stream().current(user.pk)
    with events_batched():
        for n in range(3):
            publish_event(user.pk, "order.updated", {"n": n})
        with events_batched():  # an inner block joins the outer one
            publish_event(user.pk, "fill.created", {"n": 3})
        assert event_stream().current(user.pk) == before  # nothing numbered, nothing sent yet
    [message] = received(layer, channel, 1)
    assert message["type"] == "event.messages"
    assert _payloads(message) == [0, 1, 2, 3]
    sequences = [sequence for _text, sequence in message["events"]]
    assert sequences == list(range(sequences[0], sequences[0] + 4)) and sequences[0] > before
    assert [json.loads(text)["sequence"] for text, _sequence in message["events"]] == sequences
    assert event_stream().since(user.pk, before).events == [text for text, _sequence in message["events"]]


def test_a_batch_sends_what_committed_and_nothing_a_rolled_back_savepoint_dropped(
    user, listening, django_capture_on_commit_callbacks
):
    layer, channel = listening
    # (Commits as the test's own transaction allows: the callbacks run as at a commit, without
    # the ones a rolled-back savepoint dropped.)
    with events_batched(), django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        publish_event(user.pk, "order.created", {"n": "kept"}, on_commit=True)
        with contextlib.suppress(RuntimeError), transaction.atomic():
            publish_event(user.pk, "order.created", {"n": "rolled back"}, on_commit=True)
            raise RuntimeError
        publish_event(user.pk, "order.created", {"n": "kept too"}, on_commit=True)
    assert _payloads(received(layer, channel, 1)[0]) == ["kept", "kept too"]

    with pytest.raises(RuntimeError), events_batched():  # what committed is sent however the block ends
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            publish_event(user.pk, "order.created", {"n": "committed"}, on_commit=True)
        with transaction.atomic():
            publish_event(user.pk, "order.created", {"n": "never committed"}, on_commit=True)
            raise RuntimeError
    assert _payloads(received(layer, channel, 1)[0]) == ["committed"]
