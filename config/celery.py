"""Celery application.

With ``REDIS_URL`` set, Redis is the broker and workers/beat run as their own
processes (``celery -A config worker`` / ``celery -A config beat``). Without it
the broker is in-process memory and ``manage.py serve`` runs a thread-pool
worker and beat inside the web process (see ``apps.core.embedded``).
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from kombu import Connection

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("trading")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


logger = logging.getLogger(__name__)
_maybe_close_channel = Connection.maybe_close_channel


def _close_channel_of_a_lost_broker(self: Connection, channel) -> None:
    """Work around a worker crash on a Redis restart (celery 5.7.0, kombu 5.7.0).

    After the broker connection is lost the consumer first ``collect()``s the connection
    (which clears its transport's client) and then closes it; the Redis channel's close
    restores its unacknowledged messages through that cleared client and raises
    ``AttributeError``, which celery does not ignore: "Unrecoverable error", the worker
    exits. Ignoring it lets the worker reconnect; the messages stay in Redis's unacked set
    and are restored after the visibility timeout (tasks are idempotent: claims, leases).
    tests/faults/test_faults.py restarts Redis under a working worker; drop this once it
    passes without.
    """
    try:
        _maybe_close_channel(self, channel)
    except AttributeError as exc:
        logger.warning("ignored closing a channel of a lost broker connection: %r", exc)


Connection.maybe_close_channel = _close_channel_of_a_lost_broker
