"""Thin Celery tasks of the risk monitor."""

from __future__ import annotations

from celery import shared_task

from apps.core.schedules import Schedule
from apps.risk import monitoring

PERIODIC_TASKS: list[Schedule] = [
    Schedule("risk: monitor every user", "apps.risk.tasks.risk_monitor_all", 60),
]


@shared_task(name="apps.risk.tasks.risk_monitor_all", ignore_result=True)
def risk_monitor_all() -> int:
    """Fan the users with something to watch out to ``risk_monitor_users`` in chunks."""
    return monitoring.risk_monitor_all()


@shared_task(name="apps.risk.tasks.risk_monitor_users", ignore_result=True)
def risk_monitor_users(user_ids: list[int]) -> int:
    """Monitor a chunk of users (snapshot, alerts, actions)."""
    return monitoring.risk_monitor_users(user_ids=user_ids)


@shared_task(name="apps.risk.tasks.risk_monitor_user", ignore_result=True)
def risk_monitor_user(user_id: int) -> None:
    """Monitor one user now (sent, debounced, after their fills)."""
    monitoring.risk_monitor_user(user_id=user_id)
