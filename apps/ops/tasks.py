"""Thin Celery tasks of the operations app."""

from __future__ import annotations

from celery import shared_task

from apps.core.schedules import Schedule
from apps.ops import services

PERIODIC_TASKS: list[Schedule] = [
    Schedule("ops: clean up old results", "apps.ops.tasks.results_cleanup", 24 * 60 * 60),
]


@shared_task(name="apps.ops.tasks.results_cleanup", ignore_result=True)
def results_cleanup() -> dict[str, int]:
    """Delete task results, dead letters and finished jobs past their retention settings."""
    return services.results_cleanup()
