"""A worker survives losing Redis while a task runs (config/celery.py): the task's late
acknowledgement on the lost connection is left to the visibility timeout, not a crash.

The fault tests (tests/faults/test_faults.py) restart Redis under a real worker; this pins the
one step that crashed it there, deterministically, on a real Redis connection.
"""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from kombu import Connection


def test_an_acknowledgement_on_a_lost_broker_connection_does_not_crash_the_worker(caplog):
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs REDIS_URL (a real Redis broker); .ci/run sets it")
    connection = Connection(settings.CELERY_BROKER_URL)
    channel = connection.channel()
    channel.qos.ack("delivered-while-connected")  # an ordinary acknowledgement
    connection.collect()  # what the consumer does once the broker connection is lost
    with caplog.at_level(logging.WARNING, logger="config.celery"):
        channel.qos.ack("finished-after-the-loss")  # was AttributeError: "Unrecoverable error"
    assert "lost broker connection" in caplog.text
