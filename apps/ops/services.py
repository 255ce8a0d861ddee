"""Writes of the operations pages: retry a failed task, replay a dead letter, pause or resume a
schedule, clear a cache family, and the periodic clean-up of old results."""

from __future__ import annotations

import ast
import json
import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.core.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from apps.core.jobs import FINISHED_STATUSES, job_models
from apps.ops import cachekeys
from apps.ops.models import DeadLetter
from apps.ops.selectors import WORKERS_KEY

logger = logging.getLogger(__name__)


def _send_task(name: str, args: list, kwargs: dict, *, queue: str | None = None) -> str:
    """Enqueue ``name`` (routed like any other send unless ``queue`` is given); returns its id."""
    from config.celery import app

    options: dict[str, Any] = {"queue": queue} if queue else {}
    try:
        return app.send_task(name, args=args, kwargs=kwargs, **options).id
    except Exception as exc:  # the broker down
        raise ServiceUnavailable(f"The task could not be queued: {type(exc).__name__}: {exc}") from exc


def _decode_recorded(value: str | None, kind: type) -> Any:
    """The arguments django-celery-results recorded: JSON of Celery's ``argsrepr`` (a Python
    repr, cut at 1 KiB for big arguments). Only a complete literal can be sent again."""
    if value in (None, ""):
        return kind()
    try:
        decoded = json.loads(value)
        parsed = ast.literal_eval(decoded) if isinstance(decoded, str) else decoded
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise Conflict(
            "The task's arguments were not recorded in full (or not as plain values), so it cannot be "
            "sent again from here.",
            code="arguments_unavailable",
        ) from None
    if kind is list and isinstance(parsed, tuple):
        parsed = list(parsed)
    if not isinstance(parsed, kind):
        raise Conflict("The task's recorded arguments are not usable.", code="arguments_unavailable")
    return parsed


def worker_heartbeat_record(*, hostname: str, interval: float) -> None:
    """Note that worker ``hostname`` is alive for three of its heartbeat intervals (Celery deems a
    worker offline after two missed ones); the jobs page's ping waits for that many answers."""
    key = cache.make_key(WORKERS_KEY)
    now = time.time()
    client = cachekeys.redis_client()
    try:
        with client.pipeline() as pipe:
            pipe.zadd(key, {hostname: now + 3 * interval})
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.expire(key, max(60, int(6 * interval)))
            pipe.execute()
    finally:
        client.close()


def worker_heartbeat_forget(*, hostname: str) -> None:
    """Worker ``hostname`` shut down: no page waits for its answer any more."""
    client = cachekeys.redis_client()
    try:
        client.zrem(cache.make_key(WORKERS_KEY), hostname)
    finally:
        client.close()


def task_result_retry(*, result) -> str:
    """Send a failed task again with the arguments it had (to the queue it ran on, when known);
    returns the new task's id."""
    from celery import states

    if result.status != states.FAILURE:
        raise Conflict(f"Only a failed task can be retried; this one is {result.status}.")
    if not result.task_name:
        raise Conflict("The task's name was not recorded.", code="arguments_unavailable")
    args = _decode_recorded(result.task_args, list)
    kwargs = _decode_recorded(result.task_kwargs, dict)
    # The result backend keeps no queue; the task's dead letter (a failure recorded by the worker)
    # does, so a task that was sent to a queue of its own goes back there; else the task routes.
    queue = DeadLetter.objects.filter(task_id=result.task_id).values_list("queue", flat=True).first()
    task_id = _send_task(result.task_name, args, kwargs, queue=queue or None)
    logger.info("retried task %s %s as %s", result.task_name, result.task_id, task_id)
    return task_id


@transaction.atomic
def dead_letter_replay(*, letter: DeadLetter) -> DeadLetter:
    """Send a dead letter's task again with the same arguments and mark it replayed (once)."""
    locked = DeadLetter.objects.select_for_update().filter(pk=letter.pk).first()
    if locked is None:
        raise NotFound("No such dead letter.")
    if locked.replayed_at is not None:
        raise Conflict(
            "This dead letter was already replayed; a replay that failed again is a new dead letter.",
            fields={"replayed_at": [locked.replayed_at.isoformat()]},
        )
    # Sent inside the transaction on purpose: a broker failure rolls the mark back, and the
    # worker never reads dead letters, so it cannot see the row before the commit.
    locked.replay_task_id = _send_task(
        locked.task_name, locked.args, locked.kwargs, queue=locked.queue or None
    )
    locked.replayed_at = timezone.now()
    locked.replay_count += 1
    locked.save(update_fields=["replay_task_id", "replayed_at", "replay_count"])
    logger.info("replayed dead letter %s (%s) as %s", locked.pk, locked.task_name, locked.replay_task_id)
    return locked


def schedule_set_enabled(*, pk: int, enabled: bool):
    """Pause (``enabled=False``) or resume a beat schedule; beat picks the change up by itself."""
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(pk=pk).first()
    if task is None:
        raise NotFound("No such schedule.")
    if task.enabled != enabled:
        task.enabled = enabled
        # PeriodicTask.save() bumps PeriodicTasks.last_update, which tells beat to reload.
        task.save(update_fields=["enabled"])
    return task


def cache_clear_group(*, group: str) -> dict[str, Any]:
    """Delete the cache keys of one clearable family; Celery's and Channels' keys are never touched."""
    found = cachekeys.GROUPS_BY_KEY.get(group)
    if found is None or not found.clearable:
        raise ValidationFailed(
            "Not a cache family that can be cleared.",
            fields={"group": [f"Choose one of: {', '.join(cachekeys.CLEARABLE_GROUPS)}."]},
        )
    if not cachekeys.cache_is_redis():
        raise ServiceUnavailable(
            "The cache is in-process memory (embedded mode, no REDIS_URL): there is no shared cache to clear."
        )
    pattern = cachekeys.glob_escape(cachekeys.cache_key_prefix() + found.prefix) + "*"
    client = cachekeys.redis_client()
    deleted = skipped = 0
    try:
        batch: list[bytes] = []
        for raw in client.scan_iter(match=pattern, count=cachekeys.SCAN_COUNT):
            if cachekeys.is_protected(raw.decode(errors="replace")):
                skipped += 1
                continue
            batch.append(raw)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    except Exception as exc:
        raise ServiceUnavailable(f"Redis unreachable: {type(exc).__name__}: {exc}") from exc
    finally:
        client.close()
    logger.info("cleared cache family %s (%s): %d keys", group, found.prefix, deleted)
    return {"group": group, "prefix": found.prefix, "deleted": deleted, "protected_skipped": skipped}


def results_cleanup(*, now=None) -> dict[str, int]:
    """Delete task results, dead letters and (when ``JOB_RETENTION_DAYS`` is set) finished jobs
    older than their retention settings; the beat job ``ops: clean up old results`` runs it."""
    from django_celery_results.models import GroupResult, TaskResult

    now = now or timezone.now()
    deleted: dict[str, int] = {}
    result_cutoff = now - timedelta(days=settings.TASK_RESULT_RETENTION_DAYS)
    deleted["task_results"] = TaskResult.objects.filter(date_done__lt=result_cutoff).delete()[0]
    deleted["group_results"] = GroupResult.objects.filter(date_done__lt=result_cutoff).delete()[0]
    letter_cutoff = now - timedelta(days=settings.DEAD_LETTER_RETENTION_DAYS)
    deleted["dead_letters"] = DeadLetter.objects.filter(failed_at__lt=letter_cutoff).delete()[0]
    if settings.JOB_RETENTION_DAYS > 0:
        job_cutoff = now - timedelta(days=settings.JOB_RETENTION_DAYS)
        for model in job_models():
            rows = model.objects.filter(status__in=FINISHED_STATUSES, finished_at__lt=job_cutoff)
            deleted[model._meta.label] = rows.delete()[1].get(model._meta.label, 0)
    return deleted
