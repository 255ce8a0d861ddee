from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.core.events import publish_event
from apps.core.schedules import Schedule

PERIODIC_TASKS = [
    Schedule("platform: heartbeat", "apps.core.tasks.heartbeat", settings.HEARTBEAT_SECONDS),
    Schedule(
        "jobs: reap jobs of dead workers", "apps.core.tasks.reap_stale_jobs", settings.JOBS_REAP_SECONDS
    ),
]


@shared_task(name="apps.core.tasks.heartbeat", ignore_result=True)
def heartbeat(user_id: int | None = None) -> str:
    """Push a heartbeat event to one user (or to everybody connected).

    It travels worker -> channel layer -> ``/ws/events/`` -> browser, so its
    arrival proves the whole live path; the dashboard's indicator shows it.
    """
    now = timezone.now().isoformat()
    publish_event(user_id, "heartbeat", {"server_time": now})
    return now


@shared_task(name="apps.core.tasks.reap_stale_jobs", ignore_result=True)
def reap_stale_jobs() -> dict[str, list[int]]:
    """Running jobs (of every job model) whose worker stopped sending heartbeats: sent again, or failed."""
    from apps.core.jobs import jobs_reap_stale

    return jobs_reap_stale()
