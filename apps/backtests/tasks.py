"""Celery tasks of the backtests app (queue ``backtests``): thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="apps.backtests.tasks.run_backtest", bind=True, ignore_result=True, acks_late=True)
def run_backtest(self, run_id: int) -> str | None:
    """Execute one pending backtest run (idempotent: a redelivered task finds it claimed)."""
    from apps.backtests.services import backtest_execute

    return backtest_execute(run_id=run_id, worker=self.request.hostname or "")


@shared_task(name="apps.backtests.tasks.optimization_chunk", bind=True, ignore_result=True, acks_late=True)
def optimization_chunk(self, optimization_id: int, chunk: int) -> None:
    """Evaluate one chunk of an optimization's parameter combinations."""
    from apps.backtests.optimization import optimization_run_chunk

    optimization_run_chunk(optimization_id=optimization_id, chunk=chunk, worker=self.request.hostname or "")


@shared_task(name="apps.backtests.tasks.optimization_start", bind=True, ignore_result=True, acks_late=True)
def optimization_start(self, optimization_id: int) -> None:
    """Plan an optimization and fan its chunks out to the workers."""
    from apps.backtests.optimization import optimization_dispatch

    optimization_dispatch(optimization_id=optimization_id, worker=self.request.hostname or "")
