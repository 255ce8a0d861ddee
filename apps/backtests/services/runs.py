"""The run lifecycle: create (pending, enqueued after the commit), execute on a worker, cancel, delete.

Runs never execute in a request: ``backtest_create`` stores a pending run and
enqueues the run task (queue ``backtests``) after the commit; the worker calls
``backtest_execute``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from apps.accounts.quotas import Quota, quota_guard
from apps.backtests.engine import BacktestCancelled
from apps.backtests.engine.errors import BacktestError
from apps.backtests.models import BacktestRun, StrategyKind
from apps.backtests.services.enqueue import RUN_TASK
from apps.backtests.services.failures import error_fields
from apps.backtests.services.futures import futures_inputs
from apps.backtests.services.lookahead import lookahead_report, lookahead_seconds
from apps.backtests.services.results import backtest_result_save
from apps.backtests.services.runner import load_candles, strategy_run
from apps.backtests.specs import RunSpec, parse_run_spec
from apps.core.errors import DomainError, ValidationFailed
from apps.core.jobs import (
    JobCancelled,
    JobMonitor,
    JobStatus,
    JobTimeLimitExceeded,
    job_cancel,
    job_publish_status,
    job_send,
    outage_error,
)

logger = logging.getLogger(__name__)


def time_limit_seconds() -> float:
    """Wall-clock limit of one run (and of one optimization chunk)."""
    return float(getattr(settings, "BACKTEST_TIME_LIMIT_SECONDS", 30 * 60))


def _enqueue_run(run: BacktestRun) -> None:
    job_send(run, RUN_TASK)


def backtest_create(*, user, data: Any, enqueue: bool = True) -> BacktestRun:
    """Validate a run request and store it as pending; the worker is asked after the commit.

    Raises ``ValidationFailed`` with per-field messages for any bad input, ``QuotaExceeded`` when
    the user already has as many research jobs pending or running as their quota allows.
    """
    spec: RunSpec = parse_run_spec(user=user, data=data)
    with quota_guard(user_id=user.pk, quota=Quota.RESEARCH_JOBS):
        run = BacktestRun.objects.create(owner=user, **spec.model_fields())
        if enqueue:
            transaction.on_commit(lambda: _enqueue_run(run))
    return run


def backtest_cancel(*, run: BacktestRun) -> BacktestRun:
    """Cancel a run: a pending one at once, a running one cooperatively (stops within ~2 s)."""
    return job_cancel(run)


def backtest_delete(*, run: BacktestRun) -> None:
    """Delete a run and everything it stored; a running run's monitor sees the row gone and stops."""
    run.delete()


def _finish(run: BacktestRun, status: str, **fields: Any) -> None:
    if BacktestRun.objects.finish(run.id, status, attempt=run.attempt, **fields):
        job_publish_status(BacktestRun.objects.get(id=run.id))


def backtest_execute(*, run_id: int, worker: str = "", attempt: int = 1) -> str | None:
    """Run a pending backtest to its end (called by the Celery task); returns the final status.

    Claims the run's ``attempt`` with a conditional update (pending -> running), so a
    redelivered or duplicate task never runs it twice. Every failure is recorded
    on the run with a message written for the user.
    """
    if not BacktestRun.objects.claim(run_id, worker=worker, attempt=attempt):
        return None
    run = BacktestRun.objects.select_related("strategy_version").get(id=run_id)
    job_publish_status(run)
    limit = time_limit_seconds()
    monitor = JobMonitor(
        run,
        event="backtest.progress",
        time_limit=limit,
        time_limit_message=f"The backtest exceeded the time limit of {limit:g} s and was stopped.",
    )
    try:
        monitor.progress(1, stage="loading")
        candles = load_candles(
            exchange=run.exchange, symbol=run.symbol, timeframe=run.timeframe, start=run.start, end=run.end
        )
        if len(candles) == 0:
            raise ValidationFailed("No candles are stored in the selected range.", code="no_candles")
        monitor.check()
        monitor.progress(5, stage="running")
        source = run.strategy_version.source if run.strategy_version else None
        if run.strategy_kind == StrategyKind.USER and source is None:
            raise ValidationFailed(
                "The strategy code version of this run was deleted.", code="strategy_missing"
            )
        inputs = futures_inputs(
            exchange=run.exchange,
            symbol=run.symbol,
            timeframe=run.timeframe,
            candles=candles,
            config=run.config,
            funding_source=run.funding_source,
        )
        result = strategy_run(
            kind=run.strategy_kind,
            name=run.strategy_name,
            source=source,
            params=run.params,
            candles=inputs.candles,
            config=inputs.config,
            progress=lambda f: monitor.progress(5 + 80 * f),
            should_cancel=monitor.should_cancel,
            wall_seconds=max(monitor.seconds_left, 1.0),
        )
        result.info = {**(result.info or {}), **inputs.info}
        monitor.check()
        monitor.progress(86, stage="lookahead")
        # Leave the rest of the time limit for saving: the check reports what it covered in time.
        seconds = min(lookahead_seconds(), max(monitor.seconds_left - 10, 1.0))
        run.lookahead = lookahead_report(
            job=run, candles=candles, max_seconds=seconds, should_cancel=monitor.should_cancel
        )
        BacktestRun.objects.filter(id=run.id, attempt=run.attempt).update(lookahead=run.lookahead)
        monitor.check()
        monitor.progress(96, stage="saving")
        return backtest_result_save(run, candles, result)
    except (JobTimeLimitExceeded, SoftTimeLimitExceeded) as exc:
        if isinstance(exc, SoftTimeLimitExceeded):  # Celery's own limit (prefork pools) hit first
            exc = JobTimeLimitExceeded("The backtest exceeded the worker's time limit and was stopped.")
        _finish(run, JobStatus.FAILED, **error_fields(exc))
        return JobStatus.FAILED
    except (BacktestCancelled, JobCancelled):
        _finish(run, JobStatus.CANCELLED)
        return JobStatus.CANCELLED
    except (BacktestError, DomainError) as exc:
        _finish(run, JobStatus.FAILED, **error_fields(exc))
        return JobStatus.FAILED
    except Exception as exc:  # a bug of ours: keep the traceback in the log, a readable message on the run
        logger.exception("backtest %s failed", run_id)
        _finish(
            run,
            JobStatus.FAILED,
            **outage_error(exc)
            or {
                "error_code": "internal_error",
                "error": f"Internal error ({type(exc).__name__}); the administrators can find it in the logs.",
            },
        )
        return JobStatus.FAILED
