"""Readiness checks for ``/health/ready/``: each dependency's state, with the reason while it is down.

Checked: the database, Redis (when configured), the channel layer (a message sent to a
fresh channel and received back) and a Celery worker (a ping). Each check runs in its
own thread under a deadline (``HEALTH_CHECK_TIMEOUT_SECONDS``), so a dependency that
hangs (a database pool waiting for a connection to a stopped server, a broker
reconnecting) makes the answer say so in time instead of hanging the probe. Nothing is
cached: the first request after a dependency is back reports it up.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection


def _timeout() -> float:
    return float(getattr(settings, "HEALTH_CHECK_TIMEOUT_SECONDS", 5.0))


class _Check(threading.Thread):
    """One check on its own (daemon) thread: a check that hangs is abandoned at the deadline."""

    def __init__(self, check: Callable[[], str | None]) -> None:
        super().__init__(name=f"health-{check.__name__}", daemon=True)
        self.check = check
        self.detail: str | None = None
        self.error: str | None = None
        self.started = time.perf_counter()

    def run(self) -> None:
        try:
            self.detail = self.check()
        except Exception as exc:  # every failure is reported, none raised
            self.error = f"{type(exc).__name__}: {exc}".strip()
        finally:
            connection.close()  # this thread's database connection (back to the pool)

    def result(self, timeout: float) -> dict[str, Any]:
        if self.is_alive():
            result: dict[str, Any] = {"ok": False, "error": f"no answer within {timeout:g} s"}
        elif self.error is not None:
            result = {"ok": False, "error": self.error}
        else:
            result = {"ok": True, **({"detail": self.detail} if self.detail else {})}
        result["ms"] = round((time.perf_counter() - self.started) * 1000, 1)
        return result


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _redis() -> str:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return "pong"


def _channel_layer() -> str:
    """A message to a fresh channel of the layer comes back: what live events go through.

    A layer of its own: the process's shared one may be receiving on daphne's event loop
    (WebSocket consumers), and channels-redis refuses a second loop receiving on it.
    """
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

    if not getattr(settings, "CHANNEL_LAYERS", None):
        raise RuntimeError("no channel layer is configured")
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)

    async def round_trip() -> None:
        try:
            channel = await layer.new_channel(prefix="health")
            token = uuid.uuid4().hex
            await layer.send(channel, {"type": "health.check", "token": token})
            message = await asyncio.wait_for(layer.receive(channel), timeout=2)
            if message.get("token") != token:
                raise RuntimeError("the channel layer answered with another message")
        finally:
            if hasattr(layer, "close_pools"):
                await layer.close_pools()

    async_to_sync(round_trip)()
    return type(layer).__name__


def _celery() -> str:
    if settings.EMBEDDED:
        from apps.core import embedded

        if not embedded.worker_alive():
            raise RuntimeError("the embedded worker is not running (start the app with `manage.py serve`)")
        return "embedded thread-pool worker"
    from config.celery import app

    # A broker that is down fails the connection at once instead of kombu's retries.
    with app.connection_for_write() as conn:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0.2, interval_max=0.2, timeout=2
        )
        # The first answer is enough: readiness asks whether a worker is there, not which all are
        # (without ``limit`` every probe waited the whole 1.5 s for stragglers).
        replies = app.control.ping(timeout=1.5, limit=1, connection=conn)
    if not replies:
        raise RuntimeError("no Celery worker answered a ping within 1.5 s")
    return ", ".join(sorted(name for reply in replies for name in reply))


def readiness() -> dict[str, Any]:
    """``{"status": "ok"|"error", "checks": {name: {"ok", "detail"|"error", "ms"}}}``; checks run in parallel."""
    checks: dict[str, Callable[[], str | None]] = {"database": _database}
    if settings.REDIS_URL:
        checks["redis"] = _redis
    checks["channel_layer"] = _channel_layer
    checks["celery"] = _celery
    timeout = _timeout()
    running = {name: _Check(check) for name, check in checks.items()}
    for thread in running.values():
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in running.values():
        thread.join(max(0.0, deadline - time.monotonic()))
    results = {name: thread.result(timeout) for name, thread in running.items()}
    return {"status": "ok" if all(r["ok"] for r in results.values()) else "error", "checks": results}
