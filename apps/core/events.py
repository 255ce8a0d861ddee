"""Push live events to a user's browser.

The one helper every app and every Celery task uses::

    from apps.core.events import publish_event
    publish_event(user.id, "backtest.progress", {"id": run.id, "progress": 42})

Each browser tab holds a WebSocket on ``/ws/events/`` that joins the user's
group; the consumer forwards ``{"type": event_type, "data": payload, "ts": ...}``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

BROADCAST_GROUP = "broadcast"

# Work that runs the live code on a simulation (a bot replay) publishes nothing: its orders
# and fills are not the user's trading, and thousands of them would flood the browser.
_muted: ContextVar[bool] = ContextVar("events_muted", default=False)


@contextmanager
def events_muted() -> Iterator[None]:
    """Inside this block ``publish_event`` sends nothing (in this thread or task)."""
    token = _muted.set(True)
    try:
        yield
    finally:
        _muted.reset(token)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def _send(group: str, event_type: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {
        "type": "event.message",
        "event": {"type": event_type, "data": payload, "ts": time.time()},
    }
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # plain sync code: the usual case (views, services, Celery tasks)
        _group_send(layer, group, message, event_type)
        return
    # Sync code called from a thread that runs an event loop (async_to_sync refuses there, e.g.
    # under Playwright's sync API in the browser tests): send from a short-lived thread.
    sender = threading.Thread(target=_group_send, args=(layer, group, message, event_type), daemon=True)
    sender.start()
    sender.join(timeout=5)


def _group_send(layer: Any, group: str, message: dict[str, Any], event_type: str) -> None:
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # a full or unreachable layer must never fail the caller's work
        logger.exception("could not publish %s to %s", event_type, group)


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
        transaction.on_commit(lambda: _send(group, event_type, payload))
    else:
        _send(group, event_type, payload)
