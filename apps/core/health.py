"""Readiness checks for ``/health/ready/``: database, Redis (when configured) and a Celery worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection


def _timed(check: Callable[[], str | None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
        result: dict[str, Any] = {"ok": True}
        if detail:
            result["detail"] = detail
    except Exception as exc:  # every failure is reported, none raised
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
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


def _celery() -> str:
    if settings.EMBEDDED:
        from apps.core import embedded

        if not embedded.worker_alive():
            raise RuntimeError("the embedded worker is not running (start the app with `manage.py serve`)")
        return "embedded thread-pool worker"
    from config.celery import app

    replies = app.control.ping(timeout=1.5)
    if not replies:
        raise RuntimeError("no Celery worker answered a ping within 1.5 s")
    return ", ".join(sorted(name for reply in replies for name in reply))


def readiness() -> dict[str, Any]:
    checks = {"database": _timed(_database)}
    if settings.REDIS_URL:
        checks["redis"] = _timed(_redis)
    checks["celery"] = _timed(_celery)
    return {"status": "ok" if all(c["ok"] for c in checks.values()) else "error", "checks": checks}
