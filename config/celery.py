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
from kombu.transport import redis as redis_transport

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


_redis_ack = redis_transport.QoS.ack


def _ack_on_a_lost_broker(self: redis_transport.QoS, delivery_tag) -> None:
    """The same crash by another door: a task that finishes after the broker connection was
    lost acknowledges its message on the old channel, whose transport client was cleared;
    the Redis QoS then builds a client from ``None`` (``AttributeError``) and celery exits
    with "Unrecoverable error". With the client gone the acknowledgement cannot reach Redis
    anyway: the message stays in the unacked set and is restored after the visibility
    timeout, and the task runs again (tasks are idempotent). Seen in
    tests/faults/test_faults.py when a task outlived the Redis stop by a few hundred ms.
    """
    try:
        _redis_ack(self, delivery_tag)
    except AttributeError as exc:
        transport = getattr(self.channel, "connection", None)
        if getattr(transport, "client", None) is not None:
            raise  # not a lost connection: a real error
        logger.warning("ignored acknowledging %s on a lost broker connection: %r", delivery_tag, exc)


redis_transport.QoS.ack = _ack_on_a_lost_broker
