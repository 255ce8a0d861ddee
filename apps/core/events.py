"""Push live events to a user's browser.

The one helper every app and every Celery task uses::

    from apps.core.events import publish_event
    publish_event(user.id, "backtest.progress", {"id": run.id, "progress": 42})

Each browser tab holds a WebSocket on ``/ws/events/`` that joins the user's
group; the consumer forwards one envelope for every event::

    {"type": "order.updated", "time": "2026-12-01T08:44:00.123Z", "sequence": 1764578594001,
     "payload": {...}}

``sequence`` numbers a user's events (strictly increasing); the recent ones are
kept (``apps.core.event_stream``) so a reconnecting browser catches up on what it
missed. Prices and heartbeats are not numbered (``sequence`` is null): the latest
wins, nothing is replayed. docs/events.md lists every type and its payload.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from apps.core import broadcast
from apps.core.event_stream import event_stream

logger = logging.getLogger(__name__)

BROADCAST_GROUP = "broadcast"

# Events whose latest value is all that matters: sent without a sequence number and never
# kept for catch-up (a burst of prices would only push the events that matter out of the
# kept window). Everything sent to BROADCAST_GROUP is unsequenced too.
UNSEQUENCED_TYPES = frozenset({"price", "heartbeat"})

# Work that runs the live code on a simulation (a bot replay) publishes nothing: its orders
# and fills are not the user's trading, and thousands of them would flood the browser.
_muted: ContextVar[bool] = ContextVar("events_muted", default=False)

# Inside ``events_batched``: the events due to go out, sent together when the block ends.
_batch: ContextVar[list[tuple[str, int | None, str, dict[str, Any]]] | None] = ContextVar(
    "events_batch", default=None
)


@contextmanager
def events_muted() -> Iterator[None]:
    """Inside this block ``publish_event`` sends nothing (in this thread or task)."""
    token = _muted.set(True)
    try:
        yield
    finally:
        _muted.reset(token)


@contextmanager
def events_batched() -> Iterator[None]:
    """The events this block sends (a commit inside it releasing ``on_commit`` ones included)
    go out together when it ends: each user's are numbered by one stream call and delivered
    as one channel-layer message, instead of a round of Redis calls each (a paper order sends
    five). What a rolled-back savepoint dropped is never sent, as without it; an exception
    leaving the block still sends what had committed. A block inside another joins the outer one.
    """
    if _batch.get() is not None:
        yield
        return
    token = _batch.set([])
    try:
        yield
    finally:
        batch = _batch.get()
        _batch.reset(token)
        if batch:
            _send_batch(batch)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def event_time() -> str:
    """Now as ISO-8601 UTC with milliseconds, the envelope's ``time``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope_text(event_type: str, payload: dict[str, Any], sequence: int | None = None) -> str:
    """The envelope as JSON text (how it is kept and sent; the consumer does not re-encode it)."""
    head, tail = _envelope_parts(event_type, payload)
    return f"{head}{'null' if sequence is None else sequence}{tail}"


def _envelope_parts(event_type: str, payload: dict[str, Any]) -> tuple[str, str]:
    """The envelope's JSON around its sequence number: ``head + "<sequence>" + tail``."""
    head = json.dumps({"type": event_type, "time": event_time()}, separators=(",", ":"))[:-1]
    body = json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"))
    return f'{head},"payload":{body},"sequence":', "}"


def _send(group: str, user_id: int | None, event_type: str, payload: dict[str, Any]) -> None:
    batch = _batch.get()
    if batch is not None:
        batch.append((group, user_id, event_type, payload))
        return
    layer = get_channel_layer()
    if layer is None:
        return
    head, tail = _envelope_parts(event_type, payload)
    sequence = None
    if user_id is not None and event_type not in UNSEQUENCED_TYPES:
        try:
            sequence = event_stream().append(user_id, head, tail)
        except Exception:  # an unreachable Redis must never fail the caller's work
            logger.exception("could not number %s for user %s", event_type, user_id)
            return
    text = f"{head}{'null' if sequence is None else sequence}{tail}"
    if group == BROADCAST_GROUP and broadcast.enabled():
        try:
            broadcast.publish(text)  # one PUBLISH, fanned out by each server process
        except Exception:  # an unreachable Redis must never fail the caller's work
            logger.exception("could not publish %s to everybody", event_type)
        return
    message = {"type": "event.message", "text": text, "sequence": sequence}
    try:
        _sender.run(layer.group_send(group, message), timeout=SEND_TIMEOUT)
    except Exception:  # a full or unreachable layer must never fail the caller's work
        logger.exception("could not publish %s to %s", event_type, group)


def _send_batch(batch: list[tuple[str, int | None, str, dict[str, Any]]]) -> None:
    """Send ``events_batched``'s events: each user's sequenced ones numbered and delivered together."""
    layer = get_channel_layer()
    if layer is None:
        return
    by_user: dict[int, list[tuple[str, str]]] = {}
    for group, user_id, event_type, payload in batch:
        if user_id is None or event_type in UNSEQUENCED_TYPES:
            _send(group, user_id, event_type, payload)  # as they come (``_batch`` is reset by now)
        else:
            by_user.setdefault(user_id, []).append(_envelope_parts(event_type, payload))
    for user_id, parts in by_user.items():
        try:
            sequences = event_stream().append_many(user_id, parts)
        except Exception:  # an unreachable Redis must never fail the caller's work
            logger.exception("could not number %d events for user %s", len(parts), user_id)
            continue
        events = [
            [f"{head}{sequence}{tail}", sequence]
            for (head, tail), sequence in zip(parts, sequences, strict=True)
        ]
        message = {"type": "event.messages", "events": events}
        try:
            _sender.run(layer.group_send(user_group(user_id), message), timeout=SEND_TIMEOUT)
        except Exception:  # a full or unreachable layer must never fail the caller's work
            logger.exception("could not publish %d events to user %s", len(events), user_id)


SEND_TIMEOUT = 5.0


class _SenderLoop:
    """One event loop per process, on a daemon thread, for the channel-layer sends of sync code.

    ``async_to_sync`` made a new event loop on a new thread for every send, and channels-redis
    keeps its connections per event loop: every event paid a thread, a loop and a fresh Redis
    connection (3.8 ms of CPU; a paper order sends five). Here the loop, and so the layer's
    connections, last as long as the process; a forked child (Celery's prefork) makes its own.
    Sync code in a thread that runs a loop itself (Playwright's sync API in the browser tests)
    can send too: the send runs on this loop, not the caller's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="event-sender", daemon=True
                )
                self._thread.start()
                self._pid = os.getpid()
            return self._loop

    def run(self, coroutine: Any, *, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise


_sender = _SenderLoop()


def publish_event(
    user_id: int | None, event_type: str, payload: dict[str, Any] | None = None, *, on_commit: bool = False
) -> None:
    """Send ``event_type`` with a JSON-able ``payload`` to one user's browsers.

    ``user_id=None`` sends to everybody connected. ``on_commit=True`` waits for
    the current transaction to commit, so nothing is announced for a write that
    is rolled back.
    """
    if _muted.get():
        return
    group = BROADCAST_GROUP if user_id is None else user_group(user_id)
    payload = payload or {}
    if on_commit:
        transaction.on_commit(lambda: _send(group, user_id, event_type, payload))
    else:
        _send(group, user_id, event_type, payload)
