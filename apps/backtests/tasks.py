"""Celery tasks of the backtests app (queue ``backtests``): thin wrappers around the services.

The task names are the strings in ``apps.backtests.services.enqueue`` (unchanged
since messages may be in flight); the functions are named for what they do, so
none shares a name with the engine's ``run_backtest``.
"""

from __future__ import annotations

from celery import shared_task

from apps.backtests.optimization import (
    optimization_check_lookahead,
    optimization_dispatch,
    optimization_run_chunk,
)
from apps.backtests.services import backtest_execute
from apps.backtests.services.enqueue import (
    OPTIMIZATION_CHUNK_TASK,
    OPTIMIZATION_LOOKAHEAD_TASK,
    OPTIMIZATION_START_TASK,
    RUN_TASK,
)


@shared_task(name=RUN_TASK, bind=True, ignore_result=True, acks_late=True)
def backtest_execute_task(self, run_id: int, attempt: int = 1) -> str | None:
    """Execute one pending backtest run (idempotent: a redelivered task finds it claimed)."""
    return backtest_execute(run_id=run_id, worker=self.request.hostname or "", attempt=attempt)


@shared_task(name=OPTIMIZATION_CHUNK_TASK, bind=True, ignore_result=True, acks_late=True)
def optimization_chunk_task(self, optimization_id: int, chunk: int) -> None:
    """Evaluate one chunk of an optimization's parameter combinations."""
    optimization_run_chunk(optimization_id=optimization_id, chunk=chunk, worker=self.request.hostname or "")


@shared_task(name=OPTIMIZATION_START_TASK, bind=True, ignore_result=True, acks_late=True)
def optimization_start_task(self, optimization_id: int, attempt: int = 1) -> None:
    """Plan an optimization and fan its chunks out to the workers."""
    optimization_dispatch(
        optimization_id=optimization_id, worker=self.request.hostname or "", attempt=attempt
    )


@shared_task(name=OPTIMIZATION_LOOKAHEAD_TASK, ignore_result=True, acks_late=True)
def optimization_lookahead_task(optimization_id: int) -> None:
    """The lookahead check of a finished optimization's best parameters."""
    optimization_check_lookahead(optimization_id=optimization_id)
