"""Thin Celery tasks for portfolio history: take ids, call services."""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

from apps.core.schedules import Schedule
from apps.portfolio import services

SNAPSHOT_SECONDS = 60


@shared_task(
    name="apps.portfolio.tasks.portfolio_snapshot_all", ignore_result=True, soft_time_limit=50, time_limit=58
)
def portfolio_snapshot_all() -> int:
    """Enqueue one snapshot per user with an account, then fold old points into their tiers."""
    users = services.snapshot_users()
    for user_id in users:
        portfolio_snapshot_user.delay(user_id)
    services.snapshots_compact()
    return len(users)


@shared_task(
    name="apps.portfolio.tasks.portfolio_snapshot_user", ignore_result=True, soft_time_limit=40, time_limit=50
)
def portfolio_snapshot_user(user_id: int) -> None:
    """Value every account of one user now (also run, debounced, after a fill)."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is not None:
        services.snapshot_take(user=user)


PERIODIC_TASKS: list[Schedule] = [
    Schedule(
        "portfolio: snapshot every account", "apps.portfolio.tasks.portfolio_snapshot_all", SNAPSHOT_SECONDS
    ),
]
