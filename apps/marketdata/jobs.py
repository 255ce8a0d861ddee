"""Import and download jobs: ``ImportJob`` (a core ``Job``) from submission to outcome.

Submitted from the API or the Markets page, run by ``tasks.run_job`` on a
worker under a ``JobMonitor`` (progress events, heartbeat, cancel, time limit),
failed by the core reaper when their worker dies.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from apps.core.errors import DomainError, ValidationFailed
from apps.core.jobs import (
    JobCancelled,
    JobMonitor,
    JobStatus,
    JobTimeLimitExceeded,
    job_publish_status,
    job_send,
    outage_error,
)
from apps.core.jobs import job_cancel as core_job_cancel
from apps.marketdata.download import candles_download
from apps.marketdata.gateway import check_supported, download_gateway
from apps.marketdata.models import ImportJob
from apps.marketdata.services import Progress, candles_import_file, market_ensure
from apps.marketdata.timeframes import validate_timeframe

logger = logging.getLogger(__name__)

# A download of years of 1m candles pages for a long time under the exchange's rate limit.
JOB_TIME_LIMIT_SECONDS = 6 * 60 * 60
# Enqueued by name: tasks.py imports this module, so importing the task here would make a loop.
RUN_JOB_TASK = "apps.marketdata.tasks.run_job"


def job_create(
    *,
    user,
    kind: str,
    exchange: str,
    symbol: str,
    timeframe: str,
    params: dict[str, Any],
    enqueue: bool = True,
) -> ImportJob:
    """Record an import/download job and (with ``enqueue``) queue it after commit.

    Progress and status changes arrive as ``marketdata.job`` events.
    """
    validate_timeframe(timeframe)
    if kind == ImportJob.Kind.DOWNLOAD:
        check_supported(exchange)
    market = market_ensure(exchange=exchange, symbol=symbol)
    job = ImportJob.objects.create(
        user=user, kind=kind, exchange=exchange, symbol=market.symbol, timeframe=timeframe, params=params
    )
    if enqueue:
        transaction.on_commit(lambda: job_send(job, RUN_JOB_TASK))
    return job


def job_submit(
    *,
    user,
    kind: str,
    exchange: str,
    symbol: str,
    timeframe: str,
    upload: UploadedFile | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ImportJob:
    """A job from the API or the Markets page: an import keeps its upload until the job ran."""
    params: dict[str, Any] = {}
    if kind == ImportJob.Kind.IMPORT:
        if upload is None:
            raise ValidationFailed("An import needs a candle file.", fields={"file": ["required"]})
        params["path"] = str(upload_save(upload=upload))
        params["filename"] = upload.name
    for key, value in (("start", start), ("end", end)):
        if value:
            params[key] = value.isoformat()
    try:
        return job_create(
            user=user, kind=kind, exchange=exchange, symbol=symbol, timeframe=timeframe, params=params
        )
    except Exception:
        _discard_upload(params.get("path"))  # no job will ever read it
        raise


def upload_save(*, upload: UploadedFile) -> Path:
    """Store an uploaded candle file under ``VAR_DIR/uploads/marketdata`` for the worker to import."""
    folder = _uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    # A random prefix: the name is the user's, never trusted as a path.
    safe = "".join(ch for ch in Path(upload.name).name if ch.isalnum() or ch in "._-")[:100] or "candles.csv"
    path = folder / f"{uuid.uuid4().hex}_{safe}"
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return path


def _uploads_dir() -> Path:
    return Path(settings.VAR_DIR) / "uploads" / "marketdata"


def job_cancel(*, job: ImportJob) -> ImportJob:
    """Cancel an import/download: a pending one at once, a running one at its next page or chunk.

    Raises ``Conflict`` when it has already finished.
    """
    return core_job_cancel(job)


def _job_time_limit() -> float:
    return float(getattr(settings, "MARKETDATA_JOB_TIME_LIMIT_SECONDS", JOB_TIME_LIMIT_SECONDS))


def _finish(job: ImportJob, status: str, **fields: Any) -> None:
    if ImportJob.objects.finish(job.id, status, attempt=job.attempt, **fields):
        job_publish_status(ImportJob.objects.get(id=job.id))


def job_run(*, job_id: int, worker: str = "", attempt: int = 1) -> None:
    """Run a job (in a worker): claim it, report progress, heartbeat, honour cancel, record the outcome."""
    # Claim with a conditional update so a redelivered task does not run twice.
    if not ImportJob.objects.claim(job_id, worker=worker, attempt=attempt):
        return
    job = ImportJob.objects.get(id=job_id)
    job_publish_status(job)
    limit = _job_time_limit()
    monitor = JobMonitor(
        job,
        event=ImportJob.status_event,
        time_limit=limit,
        time_limit_message=f"The {job.kind} exceeded the time limit of {limit:g} s and was stopped.",
    )

    def progress(done: int, total: int) -> None:
        monitor.check()  # inside an import's transaction: a cancel rolls the whole file back
        monitor.progress(100.0 * done / total if total else 100.0)

    try:
        monitor.check()
        if job.kind == ImportJob.Kind.IMPORT:
            report = candles_import_file(
                path=job.params["path"], exchange=job.exchange, symbol=job.symbol, timeframe=job.timeframe,
                progress=progress,
            )  # fmt: skip
            outcome = {"inserted": report.inserted, "skipped": report.skipped, "message": report.summary()}
        else:
            outcome = _run_download(job, monitor=monitor, progress=progress)
    except JobCancelled:
        _finish(job, JobStatus.CANCELLED, message="Cancelled; nothing more was stored.")
    except JobTimeLimitExceeded as exc:
        _finish(job, JobStatus.FAILED, error_code="time_limit", error=str(exc))
    except DomainError as exc:
        _finish(job, JobStatus.FAILED, error_code=exc.code, error=exc.message, error_detail=repr(exc))
    except Exception as exc:
        logger.exception("marketdata job %s failed", job.id)
        outage = outage_error(exc)
        _finish(
            job,
            JobStatus.FAILED,
            **outage
            or {
                "error_code": "internal_error",
                "error": "The job failed unexpectedly; the error has been logged.",
            },
            error_detail=repr(exc)[:5000],
        )
        if outage is None:
            raise
    else:
        _finish(job, JobStatus.COMPLETED, **outcome)
    finally:
        _discard_upload_unless_rerun(job)


def _run_download(job: ImportJob, *, monitor: JobMonitor, progress: Progress) -> dict[str, Any]:
    def sleep(seconds: float) -> None:
        # Backoff waits between retries: keep the heartbeat going and stop at once on cancel.
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            monitor.check()
            monitor.heartbeat()
            time.sleep(min(left, 0.5))

    start, end = job.params.get("start"), job.params.get("end")
    report = candles_download(
        exchange=job.exchange,
        symbol=job.symbol,
        timeframe=job.timeframe,
        start=datetime.fromisoformat(start) if start else None,
        end=datetime.fromisoformat(end) if end else None,
        gateway=download_gateway(job.exchange, sleep=sleep),
        progress=progress,
    )
    return {"inserted": report.inserted, "message": report.summary()}


def _discard_upload_unless_rerun(job: ImportJob) -> None:
    """Keep the upload while the job may still run (re-sent after a fault, or not yet recorded)."""
    from django.db import DatabaseError

    try:
        rerun = ImportJob.objects.filter(id=job.id).active().exists()
    except DatabaseError:  # still no database: the reaper will re-send or fail the job
        return
    if not rerun:
        _discard_upload(job.params.get("path"))


def _discard_upload(path: str | None) -> None:
    """Uploaded files are only kept until their import ran (files given by path are left alone)."""
    if not path:
        return
    uploads = _uploads_dir().resolve()
    candidate = Path(path).resolve()
    if candidate.parent == uploads:
        candidate.unlink(missing_ok=True)
