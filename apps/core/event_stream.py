"""Each user's event stream: the sequence numbers and the recent events kept for catch-up.

``publish_event`` appends every sequenced event here before it sends it; the
``/ws/events/`` consumer reads it back when a browser reconnects with the last
sequence it saw (``?after=N``) or when it notices a gap in what the channel
layer delivered. Two stores behind one interface:

- ``RedisEventStream`` (with ``REDIS_URL``): a counter and a capped list per user,
  appended by one Lua script, so an event's number and its place in the list are
  taken together (the list is always in sequence order, without holes) and every
  process (web, workers, beat) shares them.
- ``MemoryEventStream`` (the embedded default): the same in the one process that
  publishes and serves.

A counter starts at the current Unix time in milliseconds (not at 1), so a
counter lost with a Redis flush or a process restart starts again *above*
every number handed out before: sequences stay strictly increasing, and a
browser holding an older number gets ``live.reset`` instead of silence.
Kept: the last ``EVENTS_REPLAY_MAX`` events of a user, none older than
``EVENTS_REPLAY_SECONDS`` (docs/events.md).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from django.conf import settings


@dataclass(frozen=True)
class Missed:
    """What a client that saw up to ``after`` has missed: the events' JSON texts in order,
    or ``complete=False`` when some are no longer kept (the client must re-read)."""

    events: list[str]
    complete: bool
    current: int  # the newest sequence number handed out (0: none yet)


class EventStream(Protocol):
    def append(self, user_id: int, head: str, tail: str) -> int:
        """Number the event ``head + str(sequence) + tail`` (its JSON text), keep it, return the number."""

    def append_many(self, user_id: int, parts: list[tuple[str, str]]) -> list[int]:
        """``append`` for each ``(head, tail)`` in order, at once: consecutive numbers."""

    def current(self, user_id: int) -> int:
        """The newest sequence number of ``user_id`` (0 when none was handed out or it was lost)."""

    def since(self, user_id: int, after: int, upto: int | None = None) -> Missed:
        """The kept events numbered ``after < sequence <= upto`` (``upto``: the newest)."""


def _seed() -> int:
    return int(time.time() * 1000)


def _missed(rows: list[tuple[int, int, str]], after: int, upto: int, current: int, start: int) -> Missed:
    """``rows`` (sequence, unix ms, text) in order; keep the wanted ones if none is missing.

    The numbers handed out are ``start .. current`` without holes. ``after == 0`` is a client
    that saw an empty stream; any other ``after`` below ``start`` is from a counter since lost.
    """
    oldest_kept_ms = int((time.time() - settings.EVENTS_REPLAY_SECONDS) * 1000)
    rows = [row for row in rows if row[1] >= oldest_kept_ms]
    if after > current or 0 < after < start - 1:
        return Missed([], complete=False, current=current)
    since = max(after, start - 1) if current else after
    expected = max(0, upto - since)
    wanted = [text for seq, _ms, text in rows if since < seq <= upto]
    complete = len(wanted) == expected
    return Missed(wanted if complete else [], complete=complete, current=current)


# ------------------------------------------------------------------- Redis
# KEYS: counter (a hash: seq, the newest number; start, the first of this counter), list.
# An idle user's counter goes after a week: the next one starts at the clock, above the old numbers.
# ARGV: seed, max kept, seconds kept, unix ms, then each event's head and tail.
# The entry is "<sequence>|<unix ms>|<event JSON>"; string.format keeps a large number exact
# (Lua's tostring would print it in exponent form). Returns the events' numbers, as text.
_APPEND = """
local seq
if redis.call('HEXISTS', KEYS[1], 'seq') == 1 then
  seq = redis.call('HINCRBY', KEYS[1], 'seq', (#ARGV - 4) / 2) - (#ARGV - 4) / 2
else
  seq = tonumber(ARGV[1]) - 1
  redis.call('HSET', KEYS[1], 'seq', string.format('%d', seq + (#ARGV - 4) / 2), 'start', ARGV[1])
end
local numbers = {}
for i = 5, #ARGV, 2 do
  seq = seq + 1
  local text = string.format('%d', seq)
  redis.call('RPUSH', KEYS[2], text .. '|' .. ARGV[4] .. '|' .. ARGV[i] .. text .. ARGV[i + 1])
  numbers[#numbers + 1] = text
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], 604800)
return numbers
"""


class RedisEventStream:
    def __init__(self, url: str, prefix: str = "events") -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self._append = self.client.register_script(_APPEND)

    def _keys(self, user_id: int) -> list[str]:
        return [f"{self.prefix}:seq:{user_id}", f"{self.prefix}:log:{user_id}"]

    def append(self, user_id: int, head: str, tail: str) -> int:
        return self.append_many(user_id, [(head, tail)])[0]

    def append_many(self, user_id: int, parts: list[tuple[str, str]]) -> list[int]:
        if not parts:
            return []
        args = [_seed(), settings.EVENTS_REPLAY_MAX, settings.EVENTS_REPLAY_SECONDS, int(time.time() * 1000)]
        for head, tail in parts:
            args += (head, tail)
        return [int(number) for number in self._append(keys=self._keys(user_id), args=args)]

    def current(self, user_id: int) -> int:
        return int(self.client.hget(self._keys(user_id)[0], "seq") or 0)

    def since(self, user_id: int, after: int, upto: int | None = None) -> Missed:
        seq_key, log_key = self._keys(user_id)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hmget(seq_key, ["seq", "start"])
            pipe.lrange(log_key, 0, -1)
            (current_raw, start_raw), entries = pipe.execute()
        current = int(current_raw or 0)
        rows = []
        for entry in entries:
            seq, ms, text = entry.decode().split("|", 2)
            rows.append((int(seq), int(ms), text))
        return _missed(rows, after, current if upto is None else upto, current, int(start_raw or 0))


# ------------------------------------------------------------------- memory
class MemoryEventStream:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[int, int] = {}
        self._starts: dict[int, int] = {}
        self._logs: dict[int, deque[tuple[int, int, str]]] = {}

    def append(self, user_id: int, head: str, tail: str) -> int:
        return self.append_many(user_id, [(head, tail)])[0]

    def append_many(self, user_id: int, parts: list[tuple[str, str]]) -> list[int]:
        with self._lock:
            log = self._logs.get(user_id)
            if log is None or log.maxlen != settings.EVENTS_REPLAY_MAX:
                log = self._logs[user_id] = deque(log or (), maxlen=settings.EVENTS_REPLAY_MAX)
            now_ms = int(time.time() * 1000)
            numbers = []
            for head, tail in parts:
                seq = self._counters[user_id] + 1 if user_id in self._counters else _seed()
                self._counters[user_id] = seq
                self._starts.setdefault(user_id, seq)
                log.append((seq, now_ms, f"{head}{seq}{tail}"))
                numbers.append(seq)
            return numbers

    def current(self, user_id: int) -> int:
        with self._lock:
            return self._counters.get(user_id, 0)

    def since(self, user_id: int, after: int, upto: int | None = None) -> Missed:
        with self._lock:
            current = self._counters.get(user_id, 0)
            start = self._starts.get(user_id, 0)
            rows = list(self._logs.get(user_id, ()))
        return _missed(rows, after, current if upto is None else upto, current, start)


@lru_cache(maxsize=1)
def _stream_for(redis_url: str) -> EventStream:
    return RedisEventStream(redis_url) if redis_url else MemoryEventStream()


def event_stream() -> EventStream:
    """The store of this configuration (one per process and Redis URL)."""
    return _stream_for(settings.REDIS_URL)
