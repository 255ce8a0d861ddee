"""Sending backtests work to the workers, by task name (so services never import the task module).

The names are the Celery task names ``apps.backtests.tasks`` registers; they stay
stable because messages may be in flight across a deploy.
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import current_app, group

RUN_TASK = "apps.backtests.tasks.run_backtest"
OPTIMIZATION_START_TASK = "apps.backtests.tasks.optimization_start"
OPTIMIZATION_CHUNK_TASK = "apps.backtests.tasks.optimization_chunk"
OPTIMIZATION_LOOKAHEAD_TASK = "apps.backtests.tasks.optimization_lookahead"


def send_task(task_name: str, *args: object) -> str:
    """Send one task (routed to its queue by ``CELERY_TASK_ROUTES``); returns its task id."""
    return current_app.send_task(task_name, args=list(args)).id or ""


def send_group(task_name: str, calls: Iterable[tuple[object, ...]]) -> None:
    """Send one task per argument tuple as a Celery group, for any number of workers to share."""
    group(current_app.signature(task_name, args=list(args)) for args in calls).apply_async()
