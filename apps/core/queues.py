"""How many messages wait in each Celery queue: the one reader the metrics and the ops pages use."""

from __future__ import annotations

from django.conf import settings


def broker_queue_lengths(queues: list[str] | None = None) -> dict[str, int]:
    """Messages waiting per queue (default: ``CELERY_WORKER_QUEUES``), read through kombu.

    On Redis that is the LLEN of the queue's lists, every priority's list counted. Raises
    when the broker cannot be reached; callers decide how to report that.
    """
    from celery import current_app
    from kombu.exceptions import ChannelError

    lengths: dict[str, int] = {}
    with current_app.connection_for_read(connect_timeout=2) as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
        channel = connection.default_channel
        for queue in queues or settings.CELERY_WORKER_QUEUES:
            try:
                lengths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:  # Redis deletes an empty list: no key, nothing waiting
                lengths[queue] = 0
    return lengths
