"""The embedded default's background jobs: Celery inside the web process.

Without Redis the broker is kombu's in-process ``memory://`` transport, so the
worker has to live in the process that enqueues. ``manage.py serve`` starts a
thread-pool ``WorkController`` and an embedded beat thread here: long jobs
never block a request, and their progress reaches the browser through the
in-memory channel layer. Production runs real ``celery worker``/``beat``
processes against Redis instead.
"""

from __future__ import annotations

import logging
import threading

from celery import beat
from celery.worker import WorkController
from django.conf import settings

logger = logging.getLogger(__name__)

_worker_thread: threading.Thread | None = None
_beat_service: beat.Service | None = None


def start(*, concurrency: int = 4, with_beat: bool = True) -> None:
    """Start the in-process worker (and beat). Idempotent."""
    global _worker_thread, _beat_service
    from config.celery import app

    if _worker_thread is not None and _worker_thread.is_alive():
        return
    worker = WorkController(
        app=app,
        pool="threads",
        concurrency=concurrency,
        queues=settings.CELERY_WORKER_QUEUES,
        hostname="embedded@localhost",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="INFO",
    )
    _worker_thread = threading.Thread(target=worker.start, name="celery-embedded-worker", daemon=True)
    _worker_thread.start()
    if with_beat:
        _beat_service = beat.EmbeddedService(app, thread=True, scheduler_cls=app.conf.beat_scheduler)
        _beat_service.start()
    logger.info("embedded Celery worker started (%d threads, beat=%s)", concurrency, with_beat)


def worker_alive() -> bool:
    return _worker_thread is not None and _worker_thread.is_alive()
