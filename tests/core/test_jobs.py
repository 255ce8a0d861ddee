"""The one job model (``apps.core.jobs``): claim, cancel, monitor throttling, the reaper and the
automatic re-runs of jobs lost to a fault.

A tiny concrete job model lives only in these tests (an isolated app registry and a
table created for the test), so the abstract model is tested without any app's job.
The backtests tests show the same on the real ``BacktestRun`` with a real worker.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.db import connection, connections, models
from django.test.utils import isolate_apps
from django.utils import timezone

from apps.core.errors import Conflict
from apps.core.events import user_group
from apps.core.jobs import (
    Job,
    JobCancelled,
    JobMonitor,
    JobStatus,
    JobTimeLimitExceeded,
    job_cancel,
    job_publish_status,
    job_send,
    jobs_reap_stale,
    outage_error,
)
from tests.support import aio

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job_model():
    with isolate_apps("apps.core"):

        class SampleJob(Job):
            status_event = "sample.status"
            owner_id = models.IntegerField()

            class Meta:
                app_label = "core"
                db_table = "core_test_samplejob"

        with connection.schema_editor() as editor:
            editor.create_model(SampleJob)
        try:
            yield SampleJob
        finally:
            with connection.schema_editor() as editor:
                editor.delete_model(SampleJob)


def off_loop(action: Callable[[], Any]) -> Any:
    """Run ``action`` (which publishes events) in a plain thread: browser tests leave an event loop
    on the main thread, where ``publish_event``'s ``async_to_sync`` cannot run."""
    result: dict[str, Any] = {}

    def target():
        try:
            result["value"] = action()
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc
        finally:
            connections.close_all()  # the thread's own connection, back to the pool

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


class EventInbox:
    """A channel joined to one user's group: what the browser of that user would receive."""

    def __init__(self, user_id: int) -> None:
        self.layer = get_channel_layer()

        async def join():
            channel = await self.layer.new_channel()
            await self.layer.group_add(user_group(user_id), channel)
            return channel

        self.channel = aio.run(join())

    def drain(self, timeout: float = 0.3) -> list[dict]:
        async def collect():
            events = []
            while True:
                try:
                    message = await asyncio.wait_for(self.layer.receive(self.channel), timeout)
                except TimeoutError:
                    return events
                events.append(json.loads(message["text"]))

        return aio.run(collect())


def test_claim_moves_exactly_one_pending_job_to_running_once(job_model):
    job = job_model.objects.create(owner_id=7)
    assert job_model.objects.claim(job.pk, worker="w1@host") is True
    assert job_model.objects.claim(job.pk, worker="w2@host") is False
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.worker == "w1@host"
    assert job.started_at and job.heartbeat_at


def test_finish_only_moves_a_running_job(job_model):
    job = job_model.objects.create(owner_id=7)
    assert job_model.objects.finish(job.pk, JobStatus.COMPLETED) is False
    job_model.objects.claim(job.pk)
    assert job_model.objects.finish(job.pk, JobStatus.COMPLETED) is True
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.progress == 100 and job.finished_at
    assert job.is_finished and job.duration_seconds is not None


def test_active_lists_pending_and_running_jobs(job_model):
    pending = job_model.objects.create(owner_id=7)
    running = job_model.objects.create(owner_id=7)
    job_model.objects.claim(running.pk)
    done = job_model.objects.create(owner_id=7, status=JobStatus.COMPLETED)
    assert set(job_model.objects.active().values_list("pk", flat=True)) == {pending.pk, running.pk}
    assert list(job_model.objects.finished().values_list("pk", flat=True)) == [done.pk]


def test_cancel_of_a_pending_job_is_immediate_and_announced(job_model):
    job = job_model.objects.create(owner_id=7)
    inbox = EventInbox(7)
    off_loop(lambda: job_cancel(job))
    assert job.status == JobStatus.CANCELLED and job.finished_at
    events = inbox.drain()
    assert [e["type"] for e in events] == ["sample.status"]
    assert events[0]["payload"]["status"] == JobStatus.CANCELLED
    # A claim after the cancel finds nothing to run.
    assert job_model.objects.claim(job.pk) is False


def test_cancel_of_a_running_job_asks_its_monitor_to_stop(job_model):
    job = job_model.objects.create(owner_id=7)
    job_model.objects.claim(job.pk)
    job.refresh_from_db()
    monitor = JobMonitor(job, event=None, time_limit=60)
    assert monitor.should_cancel() is False
    job_cancel(job)
    assert job.status == JobStatus.RUNNING and job.cancel_requested
    monitor._last_cancel_check = 0.0  # skip the poll interval instead of sleeping
    with pytest.raises(JobCancelled):
        monitor.check()


def test_cancel_of_a_finished_job_is_a_conflict(job_model):
    job = job_model.objects.create(owner_id=7, status=JobStatus.FAILED)
    with pytest.raises(Conflict):
        job_cancel(job)


def test_monitor_stops_a_job_that_was_deleted_or_finished_elsewhere(job_model):
    job = job_model.objects.create(owner_id=7)
    job_model.objects.claim(job.pk)
    monitor = JobMonitor(job, event=None, time_limit=60)
    job_model.objects.filter(pk=job.pk).delete()
    assert monitor.should_cancel() is True


def test_monitor_raises_past_its_time_limit(job_model):
    job = job_model.objects.create(owner_id=7)
    job_model.objects.claim(job.pk)
    monitor = JobMonitor(job, event=None, time_limit=0, time_limit_message="too slow")
    with pytest.raises(JobTimeLimitExceeded, match="too slow"):
        monitor.should_cancel()


def test_monitor_throttles_progress_events_but_always_sends_completion(job_model):
    job = job_model.objects.create(owner_id=7)
    job_model.objects.claim(job.pk)
    inbox = EventInbox(7)
    monitor = JobMonitor(job, event="sample.progress", time_limit=60)

    def tight_loop():  # far faster than PROGRESS_EVERY
        for pct in range(0, 101):
            monitor.progress(pct)

    off_loop(tight_loop)
    events = inbox.drain()
    progresses = [e["payload"]["progress"] for e in events]
    assert all(e["type"] == "sample.progress" for e in events)
    assert progresses[0] == 0 and progresses[-1] == 100
    assert len(progresses) <= 3, progresses
    job.refresh_from_db()
    assert job.progress == 100


def test_reaper_fails_only_running_jobs_with_a_stale_heartbeat(job_model):
    now = timezone.now()
    stale = job_model.objects.create(owner_id=7, worker="dead@host")
    fresh = job_model.objects.create(owner_id=7)
    pending = job_model.objects.create(owner_id=7)
    job_model.objects.filter(pk=stale.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=now - timedelta(minutes=5)
    )
    job_model.objects.filter(pk=fresh.pk).update(status=JobStatus.RUNNING, heartbeat_at=now)
    inbox = EventInbox(7)

    reaped = off_loop(lambda: jobs_reap_stale(stale_after=timedelta(seconds=60), job_classes=[job_model]))
    assert reaped == {"core.SampleJob": [stale.pk]}

    stale.refresh_from_db()
    assert stale.status == JobStatus.FAILED and stale.error_code == "worker_lost" and stale.finished_at
    assert "stopped responding" in stale.error
    assert job_model.objects.get(pk=fresh.pk).status == JobStatus.RUNNING
    assert job_model.objects.get(pk=pending.pk).status == JobStatus.PENDING
    events = inbox.drain()
    assert [(e["type"], e["payload"]["id"], e["payload"]["status"]) for e in events] == [
        ("sample.status", stale.pk, JobStatus.FAILED)
    ]
    # A second sweep finds nothing left to reap.
    assert jobs_reap_stale(stale_after=timedelta(seconds=60), job_classes=[job_model]) == {}


def test_reaper_records_a_requested_cancel_of_a_lost_job_as_cancelled(job_model):
    job = job_model.objects.create(owner_id=7)
    job_model.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, cancel_requested=True, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    jobs_reap_stale(stale_after=timedelta(seconds=60), job_classes=[job_model])
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.error_code == ""


def test_reaper_is_a_periodic_task():
    from apps.core.schedules import declared_schedules

    reapers = [s for s in declared_schedules() if s.task == "apps.core.tasks.reap_stale_jobs"]
    assert len(reapers) == 1 and reapers[0].seconds <= 60


def test_a_job_split_over_queued_tasks_is_cancelled_at_once_while_running(job_model, monkeypatch):
    monkeypatch.setattr(job_model, "cancel_running_at_once", True)
    job = job_model.objects.create(owner_id=7)
    job_model.objects.claim(job.pk)
    monitor = JobMonitor(job, event=None, time_limit=60)
    job_cancel(job)
    assert job.status == JobStatus.CANCELLED and job.finished_at
    with pytest.raises(JobCancelled):
        monitor.check()


# ------------------------------------------------------------- automatic re-runs after a fault
SAMPLE_TASK = "tests.core.test_jobs.sample_job_run"


class SampleTask:
    """The sample job's task, run eagerly in this process as ``job_send`` sends it (id, attempt).

    ``received``: every (job id, attempt) it was called with; ``ran``: those it claimed and
    completed. With ``hold`` it only records the call, as a message still waiting in the queue.
    """

    def __init__(self, job_model) -> None:
        self.model = job_model
        self.received: list[tuple[int, int]] = []
        self.ran: list[tuple[int, int]] = []
        self.hold = False

    def __call__(self, job_id: int, attempt: int = 1) -> None:
        self.received.append((job_id, attempt))
        if self.hold or not self.model.objects.claim(job_id, worker="eager", attempt=attempt):
            return
        self.ran.append((job_id, attempt))
        job_publish_status(self.model.objects.get(pk=job_id))
        if self.model.objects.finish(job_id, JobStatus.COMPLETED, attempt=attempt):
            job_publish_status(self.model.objects.get(pk=job_id))


@pytest.fixture
def sample_task(job_model):
    from config.celery import app

    task = SampleTask(job_model)

    def sample_job_run(job_id: int, attempt: int = 1) -> None:
        task(job_id, attempt)

    app.task(name=SAMPLE_TASK)(sample_job_run)
    app.conf.task_always_eager = True
    try:
        yield task
    finally:
        app.conf.task_always_eager = False
        app.tasks.pop(SAMPLE_TASK, None)


def running_job(job_model):
    """A job sent through ``job_send`` whose worker claimed it and then went silent (no heartbeat)."""
    job = job_model.objects.create(owner_id=7)
    job_model.objects.filter(pk=job.pk).update(task_name=SAMPLE_TASK)
    assert job_model.objects.claim(job.pk, worker="doomed@host")
    job_model.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    job.refresh_from_db()
    return job


def reap(job_model):
    return off_loop(lambda: jobs_reap_stale(stale_after=timedelta(seconds=60), job_classes=[job_model]))


def test_job_send_records_the_task_and_sends_the_attempt_with_the_id(job_model, sample_task):
    job = job_model.objects.create(owner_id=7)
    off_loop(lambda: job_send(job, SAMPLE_TASK))
    job.refresh_from_db()
    assert job.task_name == SAMPLE_TASK and job.task_id
    assert sample_task.ran == [(job.pk, 1)] and job.status == JobStatus.COMPLETED and job.attempt == 1


def test_a_job_of_a_lost_worker_is_sent_again_and_completes(job_model, sample_task, settings):
    settings.JOB_AUTO_RETRIES = 2
    job = running_job(job_model)
    inbox = EventInbox(7)

    assert reap(job_model) == {"core.SampleJob": [job.pk]}

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.attempt == 2 and job.worker == "eager"
    assert job.error_code == "" and job.error == ""
    assert sample_task.ran == [(job.pk, 2)]
    events = [(e["payload"]["status"], e["payload"]["attempt"]) for e in inbox.drain()]
    assert events == [(JobStatus.PENDING, 2), (JobStatus.RUNNING, 2), (JobStatus.COMPLETED, 2)]


def test_a_job_failed_by_a_database_outage_is_sent_again_once_the_database_is_back(
    job_model, sample_task, settings
):
    from django.db import OperationalError

    settings.JOB_AUTO_RETRIES = 2
    job = running_job(job_model)
    # What a job's service records when its work raised a lost connection (the database is back).
    fields = outage_error(OperationalError())
    assert off_loop(lambda: job_model.objects.finish(job.pk, JobStatus.FAILED, attempt=1, **fields)) is False
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.attempt == 2
    assert sample_task.ran == [(job.pk, 2)]


def test_a_late_redelivery_of_an_earlier_attempt_never_runs_the_job_again(job_model, sample_task, settings):
    settings.JOB_AUTO_RETRIES = 2
    job = running_job(job_model)
    old_monitor = JobMonitor(job, event=None, time_limit=60)  # attempt 1's, on the silent worker
    assert old_monitor.should_cancel() is False
    sample_task.hold = True  # the re-sent task waits in the queue

    reap(job_model)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.attempt == 2
    assert sample_task.received == [(job.pk, 2)]
    # The old task redelivered (acks_late, visibility timeout) before the new one is taken.
    assert job_model.objects.claim(job.pk, worker="late@host", attempt=1) is False
    assert job_model.objects.claim(job.pk, worker="new@host", attempt=2) is True
    # Attempt 1's worker was only slow: it stops, and cannot record anything over attempt 2.
    old_monitor._last_cancel_check = 0.0
    with pytest.raises(JobCancelled):
        old_monitor.check()
    assert job_model.objects.finish(job.pk, JobStatus.CANCELLED, attempt=1) is False
    assert job_model.objects.get(pk=job.pk).status == JobStatus.RUNNING
    assert job_model.objects.finish(job.pk, JobStatus.COMPLETED, attempt=2) is True
    # After the end, neither attempt's task runs it again.
    assert job_model.objects.claim(job.pk, attempt=1) is False
    assert job_model.objects.claim(job.pk, attempt=2) is False
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.worker == "new@host"


def test_a_cancelled_job_is_never_run_again(job_model, sample_task, settings):
    from django.db import OperationalError

    settings.JOB_AUTO_RETRIES = 2
    # Cancel asked while it ran, then its worker died: cancelled, not sent again.
    asked = running_job(job_model)
    job_cancel(asked)
    reap(job_model)
    asked.refresh_from_db()
    assert asked.status == JobStatus.CANCELLED and asked.attempt == 1
    # Cancel asked, then a database outage ended it: failed with the reason, not sent again.
    outage = running_job(job_model)
    job_cancel(outage)
    fields = outage_error(OperationalError())
    assert off_loop(lambda: job_model.objects.finish(outage.pk, JobStatus.FAILED, **fields)) is True
    outage.refresh_from_db()
    assert outage.status == JobStatus.FAILED and outage.error_code == "database_unavailable"
    assert outage.attempt == 1
    # Re-sent, then cancelled while it waits in the queue: its task finds nothing to run.
    waiting = running_job(job_model)
    sample_task.hold = True
    reap(job_model)
    off_loop(lambda: job_cancel(waiting))
    assert job_model.objects.claim(waiting.pk, attempt=2) is False
    assert job_model.objects.get(pk=waiting.pk).status == JobStatus.CANCELLED
    assert sample_task.ran == []


def test_a_job_lost_more_often_than_its_attempts_fails_with_the_reason_and_the_tries(
    job_model, sample_task, settings
):
    settings.JOB_AUTO_RETRIES = 2
    job = running_job(job_model)
    sample_task.hold = True  # each re-sent attempt is claimed (and lost again) by hand
    inbox = EventInbox(7)
    for attempt in (2, 3):
        reap(job_model)
        assert job_model.objects.get(pk=job.pk).status == JobStatus.PENDING
        assert job_model.objects.claim(job.pk, worker="doomed@host", attempt=attempt)
        job_model.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    reap(job_model)
    job.refresh_from_db()
    assert sample_task.received == [(job.pk, 2), (job.pk, 3)]
    assert job.status == JobStatus.FAILED and job.error_code == "worker_lost" and job.attempt == 3
    assert "stopped responding" in job.error and "It was tried 3 times." in job.error
    statuses = [(e["payload"]["status"], e["payload"]["attempt"]) for e in inbox.drain()]
    assert statuses == [(JobStatus.PENDING, 2), (JobStatus.PENDING, 3), (JobStatus.FAILED, 3)]


def test_no_automatic_runs_when_switched_off_or_for_a_model_that_opts_out(
    job_model, sample_task, settings, monkeypatch
):
    settings.JOB_AUTO_RETRIES = 0
    off = running_job(job_model)
    reap(job_model)
    off.refresh_from_db()
    assert off.status == JobStatus.FAILED and off.error_code == "worker_lost" and "tried" not in off.error

    settings.JOB_AUTO_RETRIES = 2
    monkeypatch.setattr(job_model, "auto_retry", False)
    opted_out = running_job(job_model)
    reap(job_model)
    opted_out.refresh_from_db()
    assert opted_out.status == JobStatus.FAILED and opted_out.attempt == 1
    assert sample_task.received == []


def test_every_job_model_says_whether_it_is_run_again():
    from apps.backtests.models import BacktestRun, Optimization
    from apps.bots.models import BotReplay
    from apps.core.jobs import job_models
    from apps.marketdata.models import ImportJob

    assert {m: m.auto_retry for m in job_models()} == {
        BacktestRun: True,
        Optimization: False,  # its chunk tasks carry no attempt
        ImportJob: True,
        BotReplay: True,
    }
