from __future__ import annotations

from celery import shared_task

from apps.core.schedules import Schedule

PERIODIC_TASKS = [
    Schedule(
        "accounts: flush expired JWT refresh tokens", "apps.accounts.tasks.flush_expired_tokens", 24 * 60 * 60
    ),
]


@shared_task(name="apps.accounts.tasks.flush_expired_tokens", ignore_result=True)
def flush_expired_tokens() -> int:
    """Drop expired refresh tokens (and their blacklist entries) from the database."""
    from django.utils import timezone
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    deleted, _ = OutstandingToken.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
