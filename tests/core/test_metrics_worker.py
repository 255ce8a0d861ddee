"""A task on a real Celery worker moves the task metrics that ``/metrics`` serves, and its log
lines carry the id of the request that sent it.

The worker runs in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, as in production with
several processes) and writes JSON logs; the test's scrape sums the worker's files.
"""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from apps.core.observability import context
from apps.core.tasks import heartbeat
from tests.support import servers

# Starts its own process: grouped with the other real-process tests under xdist (tests/conftest.py).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.xdist_group("real_services"),
]

TOKEN = "worker-metrics-token"
QUEUE = "observability-test"  # only this test's worker consumes it
TASK = "apps.core.tasks.heartbeat"


@pytest.fixture
def multiproc_worker(tmp_path):
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (a real Redis); .ci/run sets it")
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL; .ci/run sets it")
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    log_path = tmp_path / "worker.log"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "LOG_FORMAT": "json"}
    with servers.celery_worker(queues=QUEUE, concurrency=1, log_path=log_path, env=env):
        yield metrics_dir, log_path


def task_count(client, state: str) -> float:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            if sample.name == "trading_celery_tasks_total" and sample.labels == {
                "task": TASK,
                "state": state,
            }:
                return sample.value
    return 0.0


def test_a_task_on_a_real_worker_is_counted_and_logs_its_request(multiproc_worker, client, settings, user):
    metrics_dir, log_path = multiproc_worker
    settings.METRICS_TOKEN = TOKEN
    settings.PROMETHEUS_MULTIPROC_DIR = str(metrics_dir)
    assert task_count(client, "SUCCESS") == 0

    token = context.bind(request_id="req-worker-1", user_id=user.pk)
    try:
        heartbeat.apply_async(args=[user.pk], queue=QUEUE)
        heartbeat.apply_async(args=[user.pk], queue=QUEUE)
    finally:
        context.reset(token)

    deadline = time.monotonic() + 30
    while task_count(client, "SUCCESS") < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert task_count(client, "SUCCESS") == 2

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    durations = [
        s
        for s in families["trading_celery_task_duration_seconds"].samples
        if s.name.endswith("_count") and s.labels.get("task") == TASK
    ]
    assert [s.value for s in durations] == [2.0]
    waits = [
        s for s in families["trading_celery_task_queue_wait_seconds"].samples if s.name.endswith("_count")
    ]
    assert sum(s.value for s in waits if s.labels.get("task") == TASK) == 2

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    task_lines = [r for r in lines if r.get("task_name") == TASK]
    assert task_lines, log_path.read_text()[-3000:]
    assert {(r["request_id"], r["user_id"]) for r in task_lines} == {("req-worker-1", user.pk)}
    assert all(r["task_id"] for r in task_lines)
