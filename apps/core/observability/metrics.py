"""The platform's Prometheus metrics and the text ``/metrics`` serves.

Counted where they happen (in whichever process: web, worker, beat): HTTP requests and
their latency by route (``middleware.py``), Celery tasks by name and state
(``celery_hooks.py``), open WebSocket connections (``apps/core/consumers.py``), and the
bots' ticks (``apps/bots/metrics.py``). Collected when scraped: queue lengths (the
broker) and whatever the apps register in ``SCRAPE_REGISTRY`` (orders by status:
``apps/orders/metrics.py``).

One process: its own counters are served. Several processes (daphne workers, Celery
workers, their prefork children) each count in files under ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode; the variable must be set before the processes
start, the directory emptied at deploy), and ``/metrics`` in any web process sums them.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from apps.core.queues import broker_queue_lengths

logger = logging.getLogger(__name__)

# Multiprocess mode names each process's files by its pid; containers sharing the directory
# (web, worker, beat under docker compose) may each run as pid 1, so the host name goes in
# too ("_" is the file name's separator). Set before any metric below is created.
_HOST = socket.gethostname().replace("_", "-")


def process_identifier() -> str:
    return f"{_HOST}-{os.getpid()}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(process_identifier)


def process_exited() -> None:
    """Multiprocess mode: this process's live gauges (WebSocket connections) stop counting."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        multiprocess.mark_process_dead(process_identifier(), directory)


atexit.register(process_exited)

# The *_created series double every counter for a timestamp nobody graphs.
disable_created_metrics()

PREFIX = "trading"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests answered, by route (the URL pattern's name), method and status code.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
TASKS = Counter(
    f"{PREFIX}_celery_tasks",
    "Celery tasks run, by task name and final state (SUCCESS, FAILURE, RETRY, ...).",
    ["task", "state"],
)
TASK_DURATION = Histogram(
    f"{PREFIX}_celery_task_duration_seconds",
    "Run time of Celery tasks, by task name and final state.",
    ["task", "state"],
    buckets=TASK_BUCKETS,
)
TASK_WAIT = Histogram(
    f"{PREFIX}_celery_task_queue_wait_seconds",
    "Time from sending a Celery task to a worker starting it, by task name.",
    ["task"],
    buckets=TASK_BUCKETS,
)
WEBSOCKETS = Gauge(
    f"{PREFIX}_websocket_connections",
    "Open WebSocket connections (/ws/events/, authenticated).",
    multiprocess_mode="livesum",
)

# Collectors that read their values when scraped (a query, a Redis call). Never part of
# the default registry, so only a scrape of /metrics runs them.
SCRAPE_REGISTRY = CollectorRegistry(auto_describe=False)


class QueueLengthCollector:
    """Messages waiting in each Celery queue, read from the broker at scrape time."""

    def collect(self):
        family = GaugeMetricFamily(
            f"{PREFIX}_celery_queue_length",
            "Messages waiting in a Celery queue (read from the broker when scraped).",
            labels=["queue"],
        )
        try:
            for queue, length in broker_queue_lengths().items():
                family.add_metric([queue], length)
        except Exception as exc:  # the broker is down: the family is empty, the scrape still works
            logger.warning("queue lengths unavailable: %s", exc)
        yield family


SCRAPE_REGISTRY.register(QueueLengthCollector())


def render() -> tuple[bytes, str]:
    """The exposition text of every metric, and its content type."""
    multiproc_dir = settings.PROMETHEUS_MULTIPROC_DIR
    if multiproc_dir:
        counted = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(counted, path=multiproc_dir)
    else:
        counted = REGISTRY
    return generate_latest(counted) + generate_latest(SCRAPE_REGISTRY), CONTENT_TYPE_LATEST
