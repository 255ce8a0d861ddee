"""On a real Celery worker (Redis broker, test PostgreSQL): the jobs API sees the worker, its
queues and the task it is running; a task that fails after its retries lands in the dead-letter
list with its arguments and traceback, and its replay (and a retry of its failed result) runs it
again; a beat-sent job's outcome shows on its schedule; queue lengths count waiting messages."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings
from django.core.cache import cache
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult
from rest_framework.test import APIClient

from apps.ops import selectors
from apps.ops.models import DeadLetter
from tests.backtests.api_support import wait_for
from tests.factories import UserFactory
from tests.ops.worker_app import RETRIES
from tests.support.servers import celery_worker as start_worker

# One xdist group with the other real-process tests (tests/conftest.py), though it starts its own worker.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.xdist_group("real_services"),
]

QUEUE = "ops-test"
OPS = "/api/v1/ops/"


@pytest.fixture(scope="module")
def ops_worker(django_db_setup, tmp_path_factory):
    """A worker of the test app (tests/ops/worker_app.py) on its own queue, on the test database."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (a real Redis); .ci/run sets it")
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL; .ci/run sets it")
    with start_worker(
        app_module="tests.ops.worker_app",
        hostname="ops",
        queues=QUEUE,
        concurrency=2,
        log_path=tmp_path_factory.mktemp("ops") / "ops-worker.log",
    ) as process:
        yield process


@pytest.fixture
def staff_client() -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory(is_staff=True))
    return client


def _send(name: str, *args, **options):
    from config.celery import app

    return app.send_task(name, args=list(args), queue=QUEUE, **options)


def test_workers_show_their_queues_and_the_task_they_are_running(ops_worker, staff_client):
    name = ops_worker.celery_hostname
    _send("ops_test.sleep", 6)

    def running():
        body = staff_client.get(OPS + "workers/").json()
        mine = [worker for worker in body["workers"] if worker["name"] == name]
        return mine and mine[0]["active"] and mine[0]

    worker = wait_for(running, timeout=20)
    assert worker["queues"] == [QUEUE]
    assert [task["name"] for task in worker["active"]] == ["ops_test.sleep"]
    assert worker["active"][0]["args"] == "[6]" or "6" in worker["active"][0]["args"]
    overview = staff_client.get(OPS + "jobs/").json()
    assert overview["mode"] == "redis" and overview["workers"]["available"] is True
    assert set(overview["queues"]["queues"]) == set(settings.CELERY_WORKER_QUEUES)


def test_the_jobs_overview_returns_once_the_live_workers_answered_not_after_the_ping_timeout(
    ops_worker, staff_client
):
    name = ops_worker.celery_hostname
    # Its Celery heartbeat (every 2 s) puts the worker on the live list the ping waits for.
    wait_for(lambda: name in selectors.workers_alive(), timeout=10)

    started = time.perf_counter()
    workers = selectors.workers_overview(timeout=3.0)
    elapsed = time.perf_counter() - started
    assert name in [worker["name"] for worker in workers["workers"]]
    assert elapsed < 3.0, f"waited out the ping's timeout: {elapsed:.2f} s"
    overview = staff_client.get(OPS + "jobs/").json()  # the page's own timeout: 1 s
    assert overview["workers"]["available"] and overview["ms"] < selectors.INSPECT_TIMEOUT * 1000, overview

    # A worker that shuts down leaves the list at once: no page waits for its answer.
    with start_worker(app_module="tests.ops.worker_app", hostname="ops-brief", queues=QUEUE) as brief:
        wait_for(lambda: brief.celery_hostname in selectors.workers_alive(), timeout=10)
    assert brief.celery_hostname not in selectors.workers_alive()
    assert name in selectors.workers_alive()


def test_a_task_failing_after_its_retries_is_a_dead_letter_that_replays(ops_worker, staff_client):
    marker = uuid.uuid4().hex[:10]
    cache.set(f"ops-test:fail:{marker}", True, 300)
    sent = _send("ops_test.flaky", marker)

    letter = wait_for(lambda: DeadLetter.objects.filter(task_id=sent.id).first(), timeout=30)
    assert letter.task_name == "ops_test.flaky" and letter.args == [marker] and letter.kwargs == {}
    assert letter.retries == RETRIES and letter.queue == QUEUE
    assert letter.exception_type == "RuntimeError" and f"flaky {marker} failed" in letter.error
    assert "RuntimeError" in letter.traceback and "worker_app.py" in letter.traceback
    assert DeadLetter.objects.filter(task_id=sent.id).count() == 1  # the retries were not letters
    failed = wait_for(
        lambda: TaskResult.objects.filter(task_id=sent.id, status="FAILURE").first(), timeout=10
    )
    assert "RuntimeError" in failed.traceback

    listed = staff_client.get(OPS + "dead-letters/", {"task_name": "ops_test.flaky"}).json()["results"]
    assert [row["id"] for row in listed] == [letter.pk]

    cache.delete(f"ops-test:fail:{marker}")  # whatever failed is fixed now
    replay = staff_client.post(OPS + f"dead-letters/{letter.pk}/replay/")
    assert replay.status_code == 202, replay.content
    wait_for(lambda: cache.get(f"ops-test:runs:{marker}") == 1, timeout=20)
    letter.refresh_from_db()
    assert letter.replayed_at and letter.replay_task_id == replay.json()["replay_task_id"]

    # The failed result can be sent again too, with the arguments the result backend recorded.
    retry = staff_client.post(OPS + f"results/{failed.pk}/retry/")
    assert retry.status_code == 202, retry.content
    wait_for(lambda: cache.get(f"ops-test:runs:{marker}") == 2, timeout=20)
    assert TaskResult.objects.get(task_id=retry.json()["task_id"]).task_args


def test_a_beat_sent_jobs_last_outcome_shows_on_its_schedule(ops_worker, staff_client):
    every = IntervalSchedule.objects.create(every=3600, period=IntervalSchedule.SECONDS)
    # A fresh name: outcomes stay in the (Redis) cache across test runs.
    name = f"ops-test: sleeper {uuid.uuid4().hex[:8]}"
    schedule = PeriodicTask.objects.create(name=name, task="ops_test.sleep", interval=every)
    # What django-celery-beat's scheduler adds to the messages it sends.
    sent = _send("ops_test.sleep", 0, headers={"periodic_task_name": schedule.name})

    def outcome():
        rows = staff_client.get(OPS + "schedules/", {"page_size": 500}).json()["results"]
        row = next(row for row in rows if row["id"] == schedule.pk)
        return row["last_outcome"]

    last = wait_for(outcome, timeout=20)
    assert last["state"] == "SUCCESS" and last["task_id"] == sent.id and last["result"] == "0"


def test_queue_lengths_count_the_messages_waiting():
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (a real Redis broker)")
    from config.celery import app

    parked = f"ops-test-parked-{uuid.uuid4().hex[:6]}"
    try:
        assert selectors.queue_lengths(queues=[parked])["queues"] == {parked: 0}
        for _ in range(3):
            app.send_task("apps.core.tasks.heartbeat", queue=parked)
        assert selectors.queue_lengths(queues=[parked])["queues"] == {parked: 3}
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(parked)
