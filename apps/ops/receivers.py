"""Celery signal receivers: tasks that failed for good go to the dead-letter list, each periodic
job's last outcome is remembered for the jobs page, and each worker's heartbeats keep it on the
list of live workers the page's ping waits for.

``task_failure`` is sent only when a task ends in failure: a task that retries sends
``task_retry`` instead, so a failure seen here is one whose retries are spent (or that had none).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
from django.utils import timezone

logger = logging.getLogger(__name__)


def _json_safe(value: Any) -> Any:
    """Arguments arrive JSON-decoded (the only serializer), so they store as they are; anything
    else (an eager call with an object) is kept as its repr instead of failing the record."""
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def record_dead_letter(
    sender=None, task_id=None, exception=None, args=None, kwargs=None, einfo=None, **_: Any
) -> None:
    from apps.ops.models import DeadLetter

    request = getattr(sender, "request", None)
    if getattr(request, "periodic_task_name", None):
        # A beat-sent run: the schedule sends it again anyway, so there is nothing to replay (and a
        # job failing every few seconds would flood the list); its failure stays visible in the
        # task results and as its schedule's last outcome.
        return
    delivery_info = getattr(request, "delivery_info", None) or {}
    try:
        DeadLetter.objects.create(
            task_id=str(task_id or "")[:255],
            task_name=str(getattr(sender, "name", "") or "")[:255],
            args=_json_safe(list(args or [])),
            kwargs=_json_safe(dict(kwargs or {})),
            queue=str(delivery_info.get("routing_key") or "")[:100],
            retries=int(getattr(request, "retries", 0) or 0),
            worker=str(getattr(request, "hostname", "") or "")[:255],
            exception_type=type(exception).__name__ if exception is not None else "",
            error=str(exception or "")[:10_000],
            traceback=str(getattr(einfo, "traceback", "") or "")[:50_000],
            failed_at=timezone.now(),
        )
    except Exception:  # a broken record must never break the worker's failure handling
        logger.exception("could not record the dead letter of task %s", task_id)


def record_periodic_outcome(sender=None, task_id=None, retval=None, state=None, **_: Any) -> None:
    """Remember how the last run of a beat-sent job ended (beat marks its messages with the name)."""
    request = getattr(sender, "request", None)
    name = getattr(request, "periodic_task_name", None)
    if not name:
        return
    from apps.ops.selectors import periodic_outcome_store

    try:
        periodic_outcome_store(name=name, task_id=task_id, state=state or "", result=retval)
    except Exception:  # the cache being down must not fail the task
        logger.warning("could not record the outcome of periodic task %s", name, exc_info=True)


def record_worker_heartbeat(sender=None, **_: Any) -> None:
    """Each Celery heartbeat of this worker (every 2 s) keeps it on the list the jobs page waits for."""
    from apps.ops import cachekeys, services

    if not cachekeys.cache_is_redis():
        return
    try:
        services.worker_heartbeat_record(hostname=sender.eventer.hostname, interval=sender.interval)
    except Exception:  # the cache being down must not stop the worker's heartbeat
        logger.warning("could not record the worker's heartbeat", exc_info=True)


def forget_worker(sender=None, **_: Any) -> None:
    from apps.ops import cachekeys, services

    if not cachekeys.cache_is_redis():
        return
    try:
        services.worker_heartbeat_forget(hostname=sender.hostname)
    except Exception:
        logger.warning("could not remove the worker from the live list", exc_info=True)


def connect() -> None:
    signals.task_failure.connect(record_dead_letter, dispatch_uid="ops.dead_letter")
    signals.task_postrun.connect(record_periodic_outcome, dispatch_uid="ops.periodic_outcome")
    signals.heartbeat_sent.connect(record_worker_heartbeat, dispatch_uid="ops.worker_heartbeat")
    signals.worker_shutdown.connect(forget_worker, dispatch_uid="ops.worker_shutdown")
