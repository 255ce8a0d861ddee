"""Celery signal receivers: task metrics, and the log context of a task.

A task sent while serving a request (or inside another task) carries the request id and
the user id in its message headers, so the worker's log lines of that task can be
joined with the request that caused it; every task's log lines carry its id and name.
"""

from __future__ import annotations

import time
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun, worker_process_shutdown

from apps.core.observability import context
from apps.core.observability.metrics import TASK_DURATION, TASK_WAIT, TASKS, process_exited

HEADER_REQUEST_ID = "trading_request_id"
HEADER_USER_ID = "trading_user_id"
HEADER_SENT_AT = "trading_sent_at"

# task id -> (context token, perf_counter at start); a task's prerun and postrun run in
# the same thread of the same worker process.
_running: dict[str, tuple[Any, float]] = {}


@before_task_publish.connect(dispatch_uid="observability.before_task_publish")
def add_context_headers(headers: dict | None = None, **_kwargs: Any) -> None:
    if headers is None:
        return
    ctx = context.current()
    if ctx.request_id:
        headers.setdefault(HEADER_REQUEST_ID, ctx.request_id)
    user_id = context.current_user_id()
    if user_id is not None:
        headers.setdefault(HEADER_USER_ID, user_id)
    headers.setdefault(HEADER_SENT_AT, time.time())


@task_prerun.connect(dispatch_uid="observability.task_prerun")
def task_started(task_id: str | None = None, task: Any = None, **_kwargs: Any) -> None:
    if task_id is None or task is None:
        return
    request = task.request
    sent_at = getattr(request, HEADER_SENT_AT, None)
    sent_at = float(sent_at) if isinstance(sent_at, (int, float)) else None
    token = context.bind(
        request_id=getattr(request, HEADER_REQUEST_ID, None),
        user_id=getattr(request, HEADER_USER_ID, None),
        request=None,
        task_id=task_id,
        task_name=task.name,
        task_sent_at=sent_at,
    )
    if sent_at is not None:
        TASK_WAIT.labels(task.name).observe(max(0.0, time.time() - sent_at))
    _running[task_id] = (token, time.perf_counter())


@task_postrun.connect(dispatch_uid="observability.task_postrun")
def task_finished(task_id: str | None = None, task: Any = None, state: str | None = None, **_kwargs: Any):
    started = _running.pop(task_id, None) if task_id else None
    if task is None:
        return
    state = state or "UNKNOWN"
    TASKS.labels(task.name, state).inc()
    if started is not None:
        token, at = started
        TASK_DURATION.labels(task.name, state).observe(time.perf_counter() - at)
        try:
            context.reset(token)
        except ValueError:  # set in another context (an eager task inside another): nothing to undo
            pass


@worker_process_shutdown.connect(dispatch_uid="observability.worker_process_shutdown")
def worker_process_exited(**_kwargs: Any) -> None:
    # A prefork child ends without running atexit handlers.
    process_exited()
