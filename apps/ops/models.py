"""The dead-letter list: tasks that failed for good (after their retries), kept to be replayed."""

from __future__ import annotations

from django.db import models


class DeadLetterQuerySet(models.QuerySet):
    def pending(self) -> DeadLetterQuerySet:
        return self.filter(replayed_at__isnull=True)


class DeadLetter(models.Model):
    """One task run that failed after its retries (Celery's ``task_failure``), with what it was sent."""

    task_id = models.CharField(max_length=255, db_index=True)
    task_name = models.CharField(max_length=255, db_index=True)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=100, blank=True)
    retries = models.PositiveIntegerField(default=0, help_text="retries it had made when it failed")
    worker = models.CharField(max_length=255, blank=True)
    exception_type = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    failed_at = models.DateTimeField(db_index=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_task_id = models.CharField(max_length=255, blank=True)
    replay_count = models.PositiveIntegerField(default=0)

    objects = DeadLetterQuerySet.as_manager()

    class Meta:
        ordering = ["-failed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.task_name} {self.task_id} ({self.exception_type})"

    @property
    def replayed(self) -> bool:
        return self.replayed_at is not None
