"""The one job model: every long-running job (backtests, optimizations, imports, downloads, bot runs).

A concrete job model inherits ``Job`` (Baserow's job model: state, progress,
error code and human-readable error), sets ``status_event`` (the live event its
status changes are pushed as) and, if its owner field is not ``owner``,
``owner_field``. What it then gets:

* ``Model.objects.claim(pk, worker=..., attempt=...)``: pending -> running as a conditional
  update that touches exactly one row of that attempt, so a redelivered task never runs a job
  twice (nor an earlier attempt's task a re-run one);
* ``Model.objects.finish(pk, status, attempt=..., **fields)``: running -> a finished status;
* ``job_send(job, task_name)``: the one sender (the task gets the job's id and attempt);
* ``JobMonitor``: throttled progress events, heartbeat, cancellation and time limit
  for the code running the job on a worker;
* ``job_cancel(job)``: the one cancel service (pages and API);
* ``jobs_reap_stale()``: the one reaper, run periodically by
  ``apps.core.tasks.reap_stale_jobs``, for jobs of dead workers.

A job lost to a fault (its worker died: ``worker_lost``; the database went away:
``database_unavailable``) is not the job's fault: it goes back to pending with the next
``attempt`` and its task is sent again, up to ``JOB_AUTO_RETRIES`` re-runs; past that it is
failed with the reason and the number of tries. A model whose work must not run twice sets
``auto_retry = False``; a job the user asked to cancel is never run again.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any, ClassVar

from django.apps import apps as django_apps
from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.errors import Conflict
from apps.core.events import publish_event

logger = logging.getLogger(__name__)


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# Waits between attempts to record a job's outcome while the database is unreachable.
FINISH_RETRY_SECONDS = (1.0, 2.0, 4.0, 8.0)

ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)
FINISHED_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)

WORKER_LOST_REASON = "The worker running this job stopped responding (killed, crashed or out of memory)."
DATABASE_LOST_REASON = (
    "The connection to the database was lost while the job ran (a database restart or outage)."
)
# The error codes of faults that are not the job's own: such a job is run again by itself.
FAULT_REASONS = {"worker_lost": WORKER_LOST_REASON, "database_unavailable": DATABASE_LOST_REASON}


def fault_message(error_code: str, *, attempts: int) -> str:
    """What a job lost to a fault says once it is failed for good (after ``attempts`` runs)."""
    tried = f" It was tried {attempts} times." if attempts > 1 else ""
    return f"{FAULT_REASONS[error_code]}{tried} Run it again."


DATABASE_LOST_MESSAGE = fault_message("database_unavailable", attempts=1)


def auto_retries() -> int:
    """How many times a job lost to a fault is run again by itself (``JOB_AUTO_RETRIES``)."""
    return max(0, int(getattr(settings, "JOB_AUTO_RETRIES", 2)))


def outage_error(exc: BaseException) -> dict[str, str] | None:
    """The ``error_code``/``error`` a job records when ``exc`` is a lost database connection, else None.

    Not a bug of the job: the user is told to run it again, not to read the logs.
    """
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return {"error_code": "database_unavailable", "error": DATABASE_LOST_MESSAGE}
    return None


def _reconnect_if_broken() -> None:
    """A database restart mid-job broke this thread's connection (Django does not reconnect by
    itself within a task): take a fresh one so the job's outcome can still be recorded."""
    from django.db import connection

    if connection.connection is not None and connection.errors_occurred and not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


class JobCancelled(Exception):
    """Raised in the worker when the user cancelled the job (or it was deleted or reaped)."""


class JobTimeLimitExceeded(Exception):
    """Raised in the worker when the job ran past its time limit."""


def heartbeat_timeout_seconds() -> float:
    """How long a running job may go without a heartbeat before the reaper fails it."""
    return float(getattr(settings, "BACKTEST_HEARTBEAT_TIMEOUT_SECONDS", 60))


class JobQuerySet(models.QuerySet):
    def active(self) -> JobQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=FINISHED_STATUSES)

    def claim(self, pk: int, *, worker: str = "", attempt: int = 1) -> bool:
        """pending -> running for exactly one row; False when another worker (or a cancel) won.

        ``attempt`` is the one the task was sent for (its argument): a late redelivery of an
        earlier attempt's task (acks_late, the broker's visibility timeout) finds the job
        re-sent under the next attempt and does nothing.
        """
        now = timezone.now()
        return (
            self.filter(pk=pk, status=JobStatus.PENDING, attempt=attempt).update(
                status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:200], progress=0
            )
            == 1
        )

    def finish(self, pk: int, status: str, *, attempt: int | None = None, **fields: Any) -> bool:
        """running -> ``status`` (a finished one) with ``fields``; False if it was no longer running
        (or, with ``attempt``, no longer running that attempt: it was re-sent meanwhile).

        A failure with a fault's ``error_code`` (``database_unavailable``) re-sends the job instead
        while it has automatic attempts left (``job_lost_to_fault``, which announces it): False then,
        nothing for the caller to announce.
        """
        if status not in FINISHED_STATUSES:
            raise ValueError(f"{status!r} is not a finished status")
        from django.db import OperationalError

        if status == JobStatus.COMPLETED:
            fields.setdefault("progress", 100)
        # A job that failed because the database went away records that once it is back (a restart
        # takes seconds); past the last attempt the reaper fails it instead.
        for wait in (*FINISH_RETRY_SECONDS, None):
            _reconnect_if_broken()
            now = timezone.now()
            rows = self.filter(pk=pk, status=JobStatus.RUNNING)
            if attempt is not None:
                rows = rows.filter(attempt=attempt)
            try:
                if status == JobStatus.FAILED and fields.get("error_code") in FAULT_REASONS:
                    return job_lost_to_fault(rows, **fields) == JobStatus.FAILED
                return rows.update(status=status, finished_at=now, **{"heartbeat_at": now, **fields}) == 1
            except OperationalError:
                if wait is None:
                    raise
                logger.warning("could not record job %s as %s yet; retrying in %g s", pk, status, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")


class Job(models.Model):
    """Fields and behaviour every long-running job shares (abstract)."""

    # The live event type a status change of this job is published as (e.g. "backtest.status").
    status_event: ClassVar[str] = ""
    # The ForeignKey to the user the job belongs to (its events go to that user).
    owner_field: ClassVar[str] = "owner"
    # Jobs whose work waits in a queue between heartbeats (optimization chunks) allow more.
    stale_after_factor: ClassVar[float] = 1.0
    # True: a cancel of a running job marks it cancelled at once (its monitors see the status and
    # stop), for jobs split over queued tasks that may not run for a while. False: it is marked
    # cancelled by the worker when it has stopped.
    cancel_running_at_once: ClassVar[bool] = False
    # False: a job of this model lost to a fault is failed at once, never run again by itself
    # (work that must not run twice, or that cannot start over from its row alone).
    auto_retry: ClassVar[bool] = True

    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0 to 100")
    error_code = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True, help_text="human-readable, shown to the user")
    # Written every few seconds by the worker; a stale heartbeat means the worker died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    # The task ``job_send`` sent (sent again, with the next attempt, after a fault).
    task_name = models.CharField(max_length=200, blank=True)
    # 1, then one more for each automatic re-run after a fault. The task carries it and ``claim``
    # checks it: a redelivered task of an earlier attempt never runs the job again.
    attempt = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def owner_user_id(self) -> int | None:
        return getattr(self, f"{self.owner_field}_id")

    @property
    def error_info(self) -> dict[str, Any] | None:
        if not self.error:
            return None
        return {"code": self.error_code or "error", "message": self.error}

    def event_payload(self) -> dict[str, Any]:
        """What a status event of this job carries; subclasses add their own fields."""
        return {
            "id": self.pk,
            "status": self.status,
            "progress": self.progress,
            "error": self.error_info,
            "attempt": self.attempt,
        }


def job_models() -> list[type[Job]]:
    """Every concrete job model of the installed apps."""
    return [m for m in django_apps.get_models() if issubclass(m, Job) and not m._meta.abstract]


def job_publish_status(job: Job) -> None:
    """Push ``job``'s status event (if its model declares one) to its owner."""
    if job.status_event:
        publish_event(job.owner_user_id, job.status_event, job.event_payload())


QUEUE_UNAVAILABLE_MESSAGE = "The job queue was unavailable, so this job never started. Run it again."


def job_send(job: Job, task_name: str, *, queue: str | None = None) -> str:
    """Ask a worker to run ``job`` (call after its row is committed) and record the task's id and name.

    The task is called with the job's id and attempt (``claim`` checks the attempt).

    With the broker unreachable the job is failed at once (``queue_unavailable``), never left
    pending with no task behind it, and the error is raised again (the API answers 503).
    """
    from celery import current_app
    from kombu.exceptions import OperationalError

    model = type(job)
    options = {"queue": queue} if queue else {}
    try:
        # The registered task when this process has it (honours ``task_always_eager``), else by name.
        task = current_app.tasks.get(task_name)
        args = [job.pk, job.attempt]
        sent = (
            task.apply_async(args=args, **options)
            if task
            else current_app.send_task(task_name, args=args, **options)
        )
        task_id = sent.id or ""
    except OperationalError:
        if model.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            error_code="queue_unavailable",
            error=QUEUE_UNAVAILABLE_MESSAGE,
        ):
            logger.warning("%s %s failed: the job queue is unavailable", model._meta.label, job.pk)
        raise
    model.objects.filter(pk=job.pk, task_id="").update(task_id=task_id, task_name=task_name)
    return task_id


def job_lost_to_fault(rows: JobQuerySet, *, error_code: str, **fields: Any) -> str | None:
    """A running job (``rows``: it alone, as still running) lost to the fault ``error_code``.

    While it has automatic attempts left (``JOB_AUTO_RETRIES``; not for a model with
    ``auto_retry = False`` or a job with no task recorded) it goes back to pending with the
    next attempt, its status is announced and its task is sent again after the commit:
    "pending". Otherwise it is failed with the reason and the number of tries (``fields``
    added): "failed", announced by the caller. None when ``rows`` matched no running job.
    """
    model = rows.model
    job = rows.first()
    if job is None:
        return None
    rows = rows.filter(attempt=job.attempt)
    if model.auto_retry and job.task_name and not job.cancel_requested and job.attempt <= auto_retries():
        if not rows.update(
            status=JobStatus.PENDING,
            attempt=job.attempt + 1,
            progress=0,
            worker="",
            task_id="",
            started_at=None,
            heartbeat_at=None,
        ):
            return None
        job.refresh_from_db()
        logger.warning(
            "%s %s lost to a fault (%s): sending attempt %s",
            model._meta.label,
            job.pk,
            error_code,
            job.attempt,
        )
        job_publish_status(job)
        transaction.on_commit(lambda: _send_again(job))
        return JobStatus.PENDING
    now = timezone.now()
    fields = {**fields, "error_code": error_code, "error": fault_message(error_code, attempts=job.attempt)}
    if not rows.update(status=JobStatus.FAILED, finished_at=now, **{"heartbeat_at": now, **fields}):
        return None
    return JobStatus.FAILED


def _send_again(job: Job) -> None:
    from kombu.exceptions import OperationalError

    try:
        job_send(job, job.task_name)
    except OperationalError:  # job_send failed it (queue_unavailable): say so
        job_publish_status(type(job).objects.get(pk=job.pk))


def job_cancel(job: Job) -> Job:
    """Cancel a job: a pending one at once, a running one cooperatively (its monitor stops it).

    Raises ``Conflict`` when the job has already finished.
    """
    model = type(job)
    cancellable = list(ACTIVE_STATUSES) if model.cancel_running_at_once else [JobStatus.PENDING]
    if model.objects.filter(pk=job.pk, status__in=cancellable).update(
        status=JobStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    ):
        job.refresh_from_db()
        job_publish_status(job)
        return job
    if model.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        return job
    job.refresh_from_db()
    raise Conflict(f"The job is already {job.status}.", fields={"status": [job.status]})


def jobs_reap_stale(
    *, stale_after: timedelta | None = None, job_classes: list[type[Job]] | None = None
) -> dict[str, list[int]]:
    """Deal with running jobs whose worker stopped sending heartbeats; return their ids by model label.

    A worker killed mid-job (OOM, SIGKILL, machine lost) cannot record its own
    failure; its heartbeat stops, and this periodic sweep records it instead:
    cancelled if the user had already asked for that, else lost to the fault
    ``worker_lost`` (``job_lost_to_fault``): sent again while it has automatic
    attempts left, failed with the reason after that.
    """
    base = stale_after or timedelta(seconds=heartbeat_timeout_seconds())
    reaped: dict[str, list[int]] = {}
    for model in job_models() if job_classes is None else job_classes:
        cutoff = timezone.now() - base * model.stale_after_factor
        stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
        ids = list(model.objects.filter(stale, status=JobStatus.RUNNING).values_list("pk", flat=True))
        for pk in ids:
            rows = model.objects.filter(stale, pk=pk, status=JobStatus.RUNNING)
            worker = rows.values_list("worker", flat=True).first()
            outcome = (
                JobStatus.CANCELLED
                if rows.filter(cancel_requested=True).update(
                    status=JobStatus.CANCELLED, finished_at=timezone.now()
                )
                else job_lost_to_fault(rows.filter(cancel_requested=False), error_code="worker_lost")
            )
            if outcome is None:
                continue
            reaped.setdefault(model._meta.label, []).append(pk)
            logger.warning("reaped %s %s of a lost worker (%s): %s", model._meta.label, pk, worker, outcome)
            job = model.objects.filter(pk=pk).first()
            if job is not None and outcome != JobStatus.PENDING:  # a re-sent job was announced already
                job_publish_status(job)
    return reaped


class JobMonitor:
    """Progress, heartbeat, cancellation and time limit of one running job, for the worker running it.

    ``should_cancel()`` is cheap enough to poll in a tight loop (the backtest
    engine polls it ~100 times a run, the sandbox runner every 50 ms): it reads
    the job's row at most every ``CANCEL_POLL`` seconds, so a cancel is seen
    well within the 2 s promised to users. ``check()`` raises ``JobCancelled``
    instead. Both raise ``JobTimeLimitExceeded`` past the time limit. Progress
    events (``event`` with ``{"id", "status", "progress", "stage"}``) are sent
    at most every ``PROGRESS_EVERY`` seconds and only when the percentage moved.
    """

    CANCEL_POLL = 0.25
    PROGRESS_EVERY = 0.2
    HEARTBEAT_EVERY = 5.0

    def __init__(
        self, job: Job, *, event: str | None, time_limit: float, time_limit_message: str = ""
    ) -> None:
        self.model = type(job)
        self.job_id = job.pk
        self.attempt = job.attempt
        self.owner_id = job.owner_user_id
        self.event = event
        self.time_limit = time_limit
        self.time_limit_message = time_limit_message or (
            f"The job exceeded the time limit of {time_limit:g} s and was stopped."
        )
        self.deadline = time.monotonic() + time_limit
        self.cancelled = False
        self._last_cancel_check = 0.0
        self._last_event = 0.0
        self._last_heartbeat = time.monotonic()
        self._last_pct = -1

    @property
    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def heartbeat(self, *, force: bool = False, progress: int | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_heartbeat < self.HEARTBEAT_EVERY:
            return
        self._last_heartbeat = now
        updates: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if progress is not None:
            updates["progress"] = progress
        self.model.objects.filter(pk=self.job_id, status=JobStatus.RUNNING, attempt=self.attempt).update(
            **updates
        )

    def should_cancel(self) -> bool:
        """True once the job was cancelled, deleted, finished elsewhere or re-sent (e.g. reaped)."""
        now = time.monotonic()
        if now > self.deadline:
            raise JobTimeLimitExceeded(self.time_limit_message)
        if not self.cancelled and now - self._last_cancel_check >= self.CANCEL_POLL:
            self._last_cancel_check = now
            row = (
                self.model.objects.filter(pk=self.job_id)
                .values_list("status", "cancel_requested", "attempt")
                .first()
            )
            # Another attempt running: this one's worker was taken for lost and the job re-sent.
            self.cancelled = row is None or row[0] != JobStatus.RUNNING or row[1] or row[2] != self.attempt
            self.heartbeat()
        return self.cancelled

    def check(self) -> None:
        """Raise ``JobCancelled`` (or ``JobTimeLimitExceeded``) when the job must stop."""
        if self.should_cancel():
            raise JobCancelled("job cancelled")

    def progress(self, pct: float, *, stage: str = "running", details: dict[str, Any] | None = None) -> None:
        """Record ``pct`` (0..100); publishes an event (plus ``details``) when due, heartbeats otherwise."""
        pct_int = max(0, min(100, int(pct)))
        now = time.monotonic()
        if pct_int != self._last_pct and (now - self._last_event >= self.PROGRESS_EVERY or pct_int >= 100):
            self._last_event, self._last_pct = now, pct_int
            if self.event:
                publish_event(
                    self.owner_id,
                    self.event,
                    {
                        "id": self.job_id,
                        "status": JobStatus.RUNNING,
                        "progress": pct_int,
                        "stage": stage,
                        **(details or {}),
                    },
                )
            self.heartbeat(force=True, progress=pct_int)
        else:
            self.heartbeat()
