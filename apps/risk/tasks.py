"""Thin Celery tasks of the risk app: notification delivery and the kill switch's retries."""

from __future__ import annotations

from celery import shared_task

from apps.core.schedules import Schedule
from apps.risk import killswitch, notifications

PERIODIC_TASKS: list[Schedule] = [
    # Picks up deliveries whose queue message was lost (broker outage at notify time).
    Schedule(
        "risk: resend notifications whose message was lost", "apps.risk.tasks.notifications_resend_stale", 60
    ),
]


@shared_task(bind=True, name="apps.risk.tasks.notification_deliver", ignore_result=True, max_retries=None)
def notification_deliver(self, delivery_id: int) -> None:
    """Try one delivery; a transient failure retries with the service's backoff (the service counts attempts)."""
    delay = notifications.notification_attempt(delivery_id=delivery_id)
    if delay is not None:
        raise self.retry(countdown=delay)


@shared_task(name="apps.risk.tasks.notifications_resend_stale", ignore_result=True)
def notifications_resend_stale() -> int:
    """Queue again the deliveries whose message was lost."""
    return notifications.notifications_resend_stale()


@shared_task(bind=True, name="apps.risk.tasks.kill_switch_retry", ignore_result=True, max_retries=None)
def kill_switch_retry(self, activation_id: int) -> None:
    """Retry what the kill switch could not do yet (cancels, closes on an exchange that failed)."""
    delay = killswitch.kill_switch_retry(activation_id=activation_id)
    if delay is not None:
        raise self.retry(countdown=delay)
