"""A user's event stream: sequence numbers and the kept events, in both stores.

The in-process store (embedded default) runs everywhere; the Redis store needs ``REDIS_URL``.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.conf import settings as django_settings

from apps.core.event_stream import MemoryEventStream, RedisEventStream
from apps.core.events import _envelope_parts


def _redis_stream() -> RedisEventStream:
    if not django_settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (a real Redis); .ci/run sets it")
    # A prefix of its own: the test never touches another test's (or a server's) streams.
    return RedisEventStream(django_settings.REDIS_URL, prefix=f"test-events-{uuid.uuid4().hex}")


def _drop(stream: RedisEventStream) -> None:
    keys = list(stream.client.scan_iter(f"{stream.prefix}:*"))
    if keys:
        stream.client.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
def stream(request):
    if request.param == "memory":
        yield MemoryEventStream()
        return
    redis_stream = _redis_stream()
    yield redis_stream
    _drop(redis_stream)


def append(stream, user_id: int, event_type: str, **payload) -> int:
    return stream.append(user_id, *_envelope_parts(event_type, payload))


def test_sequences_strictly_increase_per_user_and_start_above_the_clock(stream):
    before = int(time.time() * 1000)
    first = append(stream, 1, "order.created", id=1)
    assert first >= before  # a lost counter restarts above every number handed out earlier
    assert [append(stream, 1, "order.updated", id=i) for i in range(3)] == [first + 1, first + 2, first + 3]
    assert stream.current(1) == first + 3
    assert stream.current(2) == 0  # users have their own numbers
    other = append(stream, 2, "order.created", id=9)
    assert stream.current(2) == other and stream.current(1) == first + 3


def test_kept_events_are_the_envelopes_in_order(stream):
    first = append(stream, 7, "order.created", id=1)
    append(stream, 7, "fill.created", id=2, price="1.5")
    missed = stream.since(7, first - 1)
    assert missed.complete and missed.current == first + 1
    events = [json.loads(text) for text in missed.events]
    assert events == [
        {"type": "order.created", "time": events[0]["time"], "payload": {"id": 1}, "sequence": first},
        {
            "type": "fill.created",
            "time": events[1]["time"],
            "payload": {"id": 2, "price": "1.5"},
            "sequence": first + 1,
        },
    ]
    assert events[0]["time"].endswith("Z")
    assert stream.since(7, first).events == [missed.events[1]]  # only what comes after
    assert stream.since(7, first + 1) == type(missed)([], complete=True, current=first + 1)  # nothing missed


def test_a_gap_older_than_what_is_kept_is_incomplete(stream, settings):
    settings.EVENTS_REPLAY_MAX = 3
    first = append(stream, 5, "order.created", id=0)
    for i in range(1, 6):
        append(stream, 5, "order.updated", id=i)
    # Kept: first+3 .. first+5.
    assert [json.loads(t)["payload"]["id"] for t in stream.since(5, first + 2).events] == [3, 4, 5]
    missed = stream.since(5, first + 1)
    assert not missed.complete and missed.events == []
    assert not stream.since(5, first + 99).complete  # ahead of the counter: a stream that was lost


def test_events_older_than_the_kept_window_are_not_replayed(stream, settings):
    first = append(stream, 3, "order.created", id=1)
    assert stream.since(3, first - 1).complete
    settings.EVENTS_REPLAY_SECONDS = -1  # everything kept is now too old
    assert not stream.since(3, first - 1).complete
    assert stream.since(3, first).complete  # nothing was missed: no reset needed


def test_upto_bounds_what_is_returned(stream):
    first = append(stream, 4, "order.created", id=1)
    append(stream, 4, "order.created", id=2)
    append(stream, 4, "order.created", id=3)
    missed = stream.since(4, first - 1, first + 1)
    assert [json.loads(t)["sequence"] for t in missed.events] == [first, first + 1]


def test_redis_stream_survives_a_lost_counter_with_higher_numbers():
    stream = _redis_stream()
    first = append(stream, 1, "order.created", id=1)
    for _ in range(5):
        append(stream, 1, "order.created", id=1)
    stream.client.delete(*stream._keys(1))  # a flush or eviction
    time.sleep(0.02)  # the restarted counter is the clock in ms: above first + 5 after 5 ms
    again = append(stream, 1, "order.created", id=2)
    assert again > first + 5
    assert not stream.since(1, first + 5).complete  # a client from before the loss must re-read
    _drop(stream)


def test_a_client_that_saw_the_stream_empty_gets_all_of_it_while_all_is_kept(stream, settings):
    first = append(stream, 6, "order.created", id=1)
    append(stream, 6, "order.created", id=2)
    assert [json.loads(t)["sequence"] for t in stream.since(6, 0).events] == [first, first + 1]
    settings.EVENTS_REPLAY_MAX = 1
    append(stream, 6, "order.created", id=3)  # trims the first two
    assert not stream.since(6, 0).complete


def test_redis_keys_of_an_idle_user_expire(settings):
    stream = _redis_stream()
    append(stream, 8, "order.created", id=1)
    counter, log = stream._keys(8)
    assert 0 < stream.client.ttl(log) <= settings.EVENTS_REPLAY_SECONDS
    assert settings.EVENTS_REPLAY_SECONDS < stream.client.ttl(counter) <= 7 * 86400
    _drop(stream)


def test_events_appended_together_get_consecutive_numbers_after_the_earlier_ones(stream):
    assert stream.append_many(3, []) == []
    parts = [_envelope_parts("order.created", {"id": i}) for i in range(3)]
    first = stream.append_many(3, parts)  # a new counter: starts at the clock
    assert first == [first[0], first[0] + 1, first[0] + 2] and first[0] >= int(time.time() * 1000) - 60_000
    single = append(stream, 3, "fill.created", id=3)
    later = stream.append_many(3, parts[:2])
    assert single == first[2] + 1 and later == [single + 1, single + 2]
    assert stream.current(3) == later[1]
    missed = stream.since(3, first[0] - 1)
    assert missed.complete
    assert [json.loads(text)["sequence"] for text in missed.events] == [*first, single, *later]
    assert [json.loads(text)["payload"]["id"] for text in missed.events] == [0, 1, 2, 3, 0, 1]
