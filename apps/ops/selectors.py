"""Reads of the operations pages: Celery workers and queues, schedules, task results, the
dead-letter list, the Redis cache, and one user's jobs across the apps."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import CharField, QuerySet, Value
from django.utils import timezone

from apps.core.errors import NotFound
from apps.core.jobs import Job, job_models
from apps.core.queues import broker_queue_lengths
from apps.ops import cachekeys
from apps.ops.models import DeadLetter

logger = logging.getLogger(__name__)

INSPECT_TIMEOUT = 1.0
# The workers heard from lately: a sorted set of hostnames scored by when each is presumed gone
# (services.worker_heartbeat_record, on every worker's Celery heartbeat), in the cache's namespace.
WORKERS_KEY = "ops:workers"
OUTCOME_KEY = "ops:periodic:{digest}"
OUTCOME_TTL = 7 * 24 * 60 * 60
EMBEDDED_REASON = (
    "Embedded mode (no REDIS_URL): the broker is in-process memory and the one worker runs as "
    "threads inside the web process."
)


# ---------------------------------------------------------------------------------- workers
def _active_from_requests(requests: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": request.id,
            "name": request.task_name,
            "args": request.argsrepr,
            "kwargs": request.kwargsrepr,
            "started": request.time_start,
        }
        for request in list(requests)
    ]


def _task_info(task: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": task.get("id"),
        "name": task.get("name") or task.get("type"),
        "args": str(task.get("args", "")),
        "kwargs": str(task.get("kwargs", "")),
        "started": task.get("time_start"),
    }


def workers_alive() -> list[str]:
    """The workers whose Celery heartbeat (every 2 s) was heard lately; empty if unknown (no
    Redis cache, the cache down, or workers started ``--without-heartbeat``)."""
    if not cachekeys.cache_is_redis():
        return []
    client = cachekeys.redis_client()
    try:
        names = client.zrangebyscore(cache.make_key(WORKERS_KEY), time.time(), "+inf")
    except Exception:
        logger.warning("worker heartbeats unavailable", exc_info=True)
        return []
    finally:
        client.close()
    return sorted(name.decode() for name in names)


def workers_overview(*, timeout: float = INSPECT_TIMEOUT) -> dict[str, Any]:
    """The workers answering now, with the queues they consume and the tasks they are running.

    A broadcast ping finds the workers. It stops as soon as as many answered as there are workers
    alive by their heartbeats (``limit``); only when one of those is gone, or none is known, does it
    wait out ``timeout`` for stragglers. The inspect calls then wait only for the workers that
    answered, so a page costs a few round trips, not a second.
    """
    if settings.EMBEDDED:
        from celery.worker import state

        from apps.core import embedded

        alive = embedded.worker_alive()
        workers = []
        if alive:
            # The embedded worker runs in this very process, so its registry of running tasks is ours.
            workers.append(
                {
                    "name": "embedded@localhost",
                    "queues": list(settings.CELERY_WORKER_QUEUES),
                    "active": _active_from_requests(state.active_requests),
                    "reserved": len(state.reserved_requests),
                }
            )
        reason = EMBEDDED_REASON + (
            "" if alive else " It is not running in this process (start the app with `manage.py serve`)."
        )
        return {"mode": "embedded", "available": alive, "detail": reason, "workers": workers}

    from config.celery import app

    try:
        replies = app.control.ping(timeout=timeout, limit=len(workers_alive()) or None)
        names = sorted(name for reply in replies for name in reply)
        if not names:
            return {
                "mode": "redis",
                "available": False,
                "detail": "No worker answered a ping.",
                "workers": [],
            }
        inspect = app.control.inspect(destination=names, timeout=timeout, limit=len(names))
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
        reserved = inspect.reserved() or {}
    except Exception as exc:  # the broker down: say so, the page still renders
        logger.warning("celery inspect failed", exc_info=True)
        return {"mode": "redis", "available": False, "detail": f"{type(exc).__name__}: {exc}", "workers": []}
    workers = [
        {
            "name": name,
            "queues": sorted(q["name"] for q in queues.get(name) or []),
            "active": [_task_info(task) for task in active.get(name) or []],
            "reserved": len(reserved.get(name) or []),
        }
        for name in names
    ]
    return {"mode": "redis", "available": True, "detail": "", "workers": workers}


def queue_lengths(*, queues: list[str] | None = None) -> dict[str, Any]:
    """Messages waiting in each queue the workers consume (kombu: LLEN of the Redis lists,
    counting every priority's list; the in-process queues in embedded mode)."""
    try:
        lengths = broker_queue_lengths(queues)
    except Exception as exc:
        logger.warning("queue lengths unavailable", exc_info=True)
        return {"available": False, "detail": f"{type(exc).__name__}: {exc}", "queues": {}}
    return {"available": True, "detail": "", "queues": lengths}


# -------------------------------------------------------------------------------- schedules
def _outcome_key(name: str) -> str:
    # Schedule names are free text (spaces, colons); a digest makes a portable cache key.
    return OUTCOME_KEY.format(digest=hashlib.sha256(name.encode()).hexdigest()[:24])


def periodic_outcome_store(*, name: str, task_id: str | None, state: str, result: Any) -> None:
    """Remember how ``name``'s last run ended (periodic tasks mostly ignore their results)."""
    text = repr(result)
    cache.set(
        _outcome_key(name),
        {
            "task_id": task_id,
            "state": state,
            "result": text[:500],
            "at": timezone.now().isoformat(),
        },
        OUTCOME_TTL,
    )


def _outcome_from_result(result) -> dict[str, Any]:
    return {
        "task_id": result.task_id,
        "state": result.status,
        "result": (result.result or "")[:500],
        "at": result.date_done.isoformat() if result.date_done else None,
    }


def schedule_list() -> list[dict[str, Any]]:
    """Every beat schedule with its last run, next run and last outcome."""
    from django_celery_beat.models import PeriodicTask
    from django_celery_results.models import TaskResult

    from apps.core.schedules import declared_schedules

    declared = {schedule.name for schedule in declared_schedules()}
    tasks = list(
        PeriodicTask.objects.select_related("interval", "crontab", "solar", "clocked").order_by("name")
    )
    outcomes = cache.get_many([_outcome_key(t.name) for t in tasks]) if tasks else {}
    now = timezone.now()
    rows = []
    for task in tasks:
        outcome = outcomes.get(_outcome_key(task.name))
        if outcome is None:
            stored = TaskResult.objects.filter(periodic_task_name=task.name).order_by("-date_done").first()
            outcome = _outcome_from_result(stored) if stored else None
        rows.append(
            {
                "id": task.pk,
                "name": task.name,
                "task": task.task,
                "enabled": task.enabled,
                "declared_in_code": task.name in declared,
                "schedule": str(task.scheduler or ""),
                "queue": task.queue or "",
                "last_run_at": task.last_run_at,
                "total_run_count": task.total_run_count,
                "next_run_at": _next_run(task, now) if task.enabled else None,
                "last_outcome": outcome,
            }
        )
    return rows


def _next_run(task, now):
    """When beat will next send ``task`` (``None``: no estimate, as for a clocked task already run).

    A schedule that never ran has no ``last_run_at``, and django-celery-beat's own estimate then
    falls back to "now". Instead, as its scheduler does (``ModelEntry``, 2.9): an interval counts
    from when the row last changed (``date_changed``, what beat takes as its first
    ``last_run_at``), or runs at its ``start_time`` when it has one (beat backdates it so it is due
    then); a crontab (or solar) one runs at its next matching time from now. Nothing runs before
    ``start_time``, and a time already past means beat sends it at its next tick: now.
    """
    try:
        if task.last_run_at is None and task.interval_id and task.start_time:
            at = task.start_time
        else:
            since = task.last_run_at or (task.date_changed if task.interval_id else now)
            schedule = task.schedule
            schedule.nowfun = lambda: now  # the schedule's "now" is ours: exact times, no drift
            remaining = schedule.remaining_estimate(since)
            if remaining is None:
                return None
            at = now + remaining
    except Exception:  # an odd schedule (a clocked one already run): no estimate
        return None
    return max(at, now, task.start_time or now)


# ----------------------------------------------------------------------------- task results
def task_result_list(*, status: str | None = None, task_name: str | None = None) -> QuerySet:
    from django_celery_results.models import TaskResult

    results = TaskResult.objects.order_by("-date_done", "-id")
    if status:
        results = results.filter(status=status)
    if task_name:
        results = results.filter(task_name=task_name)
    return results


def task_result_get(*, pk: int):
    from django_celery_results.models import TaskResult

    result = TaskResult.objects.filter(pk=pk).first()
    if result is None:
        raise NotFound("No such task result.")
    return result


def dead_letter_list(*, replayed: bool | None = None, task_name: str | None = None) -> QuerySet[DeadLetter]:
    letters = DeadLetter.objects.all()
    if replayed is not None:
        letters = letters.filter(replayed_at__isnull=not replayed)
    if task_name:
        letters = letters.filter(task_name=task_name)
    return letters


def dead_letter_get(*, pk: int) -> DeadLetter:
    letter = DeadLetter.objects.filter(pk=pk).first()
    if letter is None:
        raise NotFound("No such dead letter.")
    return letter


def jobs_overview() -> dict[str, Any]:
    """What the admin jobs page shows at the top: workers, queues, failures not yet replayed."""
    started = time.perf_counter()
    overview = {
        "mode": "embedded" if settings.EMBEDDED else "redis",
        "workers": workers_overview(),
        "queues": queue_lengths(),
        "dead_letters_pending": DeadLetter.objects.pending().count(),
    }
    overview["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return overview


# ----------------------------------------------------------------------------------- cache
def cache_overview() -> dict[str, Any]:
    """Health, memory, hit ratio and keys by prefix of the Redis behind the Django cache."""
    backend = settings.CACHES["default"]["BACKEND"]
    if not cachekeys.cache_is_redis():
        return {
            "available": False,
            "backend": backend,
            "detail": "The cache is this process's memory (embedded mode, no REDIS_URL): "
            "there is no Redis to inspect; its entries live and die with the process.",
        }
    client = cachekeys.redis_client()
    try:
        started = time.perf_counter()
        client.ping()
        ping_ms = round((time.perf_counter() - started) * 1000, 2)
        memory = client.info("memory")
        stats = client.info("stats")
        keyspace = client.info("keyspace")
        db_size = client.dbsize()
        groups = _keys_by_prefix(client)
    except Exception as exc:
        return {
            "available": False,
            "backend": backend,
            "detail": f"Redis unreachable: {type(exc).__name__}: {exc}",
        }
    finally:
        client.close()
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    return {
        "available": True,
        "backend": backend,
        "detail": "",
        "ping_ms": ping_ms,
        "memory": {
            "used_memory": memory.get("used_memory"),
            "used_memory_human": memory.get("used_memory_human"),
            "used_memory_peak_human": memory.get("used_memory_peak_human"),
            "maxmemory": memory.get("maxmemory"),
            "maxmemory_policy": memory.get("maxmemory_policy"),
        },
        "hits": hits,
        "misses": misses,
        # Server-wide counters (Redis counts per server, not per database).
        "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
        "keyspace": {db: dict(info) for db, info in keyspace.items()},
        "db_keys": db_size,
        "cache_key_prefix": cachekeys.cache_key_prefix(),
        **groups,
    }


def _keys_by_prefix(client) -> dict[str, Any]:
    """Cache keys counted per known group (a key counts in each group whose prefix it has, so
    ``marketdata:`` includes the prices); the rest by their first word. SCAN, capped."""
    prefix = cachekeys.cache_key_prefix()
    counts = {group.key: 0 for group in cachekeys.CACHE_GROUPS}
    other: dict[str, int] = {}
    scanned = 0
    truncated = False
    for raw in client.scan_iter(match=f"{cachekeys.glob_escape(prefix)}*", count=cachekeys.SCAN_COUNT):
        scanned += 1
        key = raw.decode(errors="replace")[len(prefix) :]
        matched = False
        for group in cachekeys.CACHE_GROUPS:
            if key.startswith(group.prefix):
                counts[group.key] += 1
                matched = True
        if not matched:
            word = key.split(":", 1)[0][:60] or "(empty)"
            other[word] = other.get(word, 0) + 1
        if scanned >= cachekeys.SCAN_CAP:
            truncated = True
            break
    return {
        "groups": [
            {
                "key": group.key,
                "prefix": group.prefix,
                "description": group.description,
                "clearable": group.clearable,
                "keys": counts[group.key],
            }
            for group in cachekeys.CACHE_GROUPS
        ],
        "other_prefixes": dict(sorted(other.items(), key=lambda item: -item[1])),
        "cache_keys_scanned": scanned,
        "truncated": truncated,
    }


# ------------------------------------------------------------------------ one user's jobs
# A job model's kind in the list (ImportJob's comes from its own ``kind``: import or download) and
# the page that shows one. A Job model not named here is still listed, under its model name.
JOB_KINDS: dict[str, str] = {
    "backtests.BacktestRun": "backtest",
    "backtests.Optimization": "optimization",
    "marketdata.ImportJob": "",  # its ``kind`` field
    "bots.BotReplay": "bot_replay",
}
USER_JOB_KINDS = ("backtest", "optimization", "import", "download", "bot_replay")


def _kind_expression(model: type[Job]):
    from django.db.models import F

    kind = JOB_KINDS.get(model._meta.label, model._meta.model_name)
    return F("kind") if kind == "" else Value(kind, output_field=CharField())


def _user_job_querysets(*, user, kind: str | None, status: str | None) -> list[QuerySet]:
    querysets = []
    for model in sorted(job_models(), key=lambda m: m._meta.label):
        jobs = model.objects.filter(**{model.owner_field: user}).order_by()
        if status:
            jobs = jobs.filter(status=status)
        jobs = jobs.annotate(
            job_kind=_kind_expression(model), job_model=Value(model._meta.label, output_field=CharField())
        )
        if kind:
            jobs = jobs.filter(job_kind=kind)
        querysets.append(jobs.values_list("pk", "created_at", "job_kind", "job_model"))
    return querysets


def user_job_index(*, user, kind: str | None = None, status: str | None = None) -> QuerySet:
    """``user``'s jobs of every kind, newest first, as (pk, created_at, kind, model label) rows:
    one SQL UNION, so it pages and counts in the database; ``user_job_rows`` fills a page in."""
    first, *rest = _user_job_querysets(user=user, kind=kind, status=status)
    return first.union(*rest, all=True).order_by("-created_at", "-pk")


def user_job_rows(index_rows) -> list[dict[str, Any]]:
    from django.apps import apps as django_apps

    by_model: dict[str, list[int]] = {}
    for pk, _created, _kind, label in index_rows:
        by_model.setdefault(label, []).append(pk)
    objects = {label: django_apps.get_model(label).objects.in_bulk(pks) for label, pks in by_model.items()}
    rows = []
    for pk, _created, kind, label in index_rows:
        job = objects[label].get(pk)
        if job is not None:  # deleted between the two queries
            rows.append(_job_row(job, kind))
    return rows


def _job_row(job: Job, kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": job.pk,
        "title": str(job),
        "status": job.status,
        "progress": job.progress,
        "attempt": job.attempt,
        "error": job.error_info,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "duration_seconds": job.duration_seconds,
        "url": _job_url(job, kind),
    }


def _job_url(job: Job, kind: str) -> str | None:
    from django.urls import NoReverseMatch, reverse

    try:
        if kind == "backtest":
            return reverse("backtests:detail", args=[job.pk])
        if kind == "optimization":
            return reverse("backtests:optimization", args=[job.pk])
        if kind == "bot_replay":
            return reverse("bots:detail", args=[job.bot_id])
        if kind in ("import", "download"):
            return reverse("marketdata:index")
    except NoReverseMatch:
        return None
    return None
