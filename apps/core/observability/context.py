"""What a log line and a task carry about where it runs: the request id, the user, the task.

Kept in context variables, so each request (a thread or an asyncio task under ASGI) and each
Celery task sees its own. The request itself is kept rather than its user id because the
user is often known only later: DRF authenticates a JWT inside the view (and then sets
``request.user`` on the Django request), a session is read lazily on first use.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.utils.functional import LazyObject, empty

# An incoming X-Request-ID is kept only if it is short and plain (it ends up in every log
# line and in the response header): letters, digits and - _ . : up to 64 characters.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class LogContext:
    request_id: str | None = None
    request: Any = None  # the HttpRequest being served, if any
    user_id: int | None = None  # known up front (a task enqueued by a signed-in user)
    task_id: str | None = None
    task_name: str | None = None
    task_sent_at: float | None = None  # when the running task was sent (epoch seconds)


_context: ContextVar[LogContext] = ContextVar("trading_log_context", default=LogContext())  # noqa: B039


def current() -> LogContext:
    return _context.get()


def bind(**fields: Any):
    """Set fields of the current context; returns the token to ``reset`` it with."""
    values = {**current().__dict__, **fields}
    return _context.set(LogContext(**values))


def reset(token) -> None:
    _context.reset(token)


def request_id_from_header(value: str | None) -> str:
    """The client's request id if it is sane, else a new one."""
    if value and _SANE_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


def user_id_of_request(request: Any) -> int | None:
    """The user of ``request`` if it is already known, without a query to find it out.

    ``request.user`` is Django's lazy object until something reads it (then it holds the
    user) or DRF's authentication replaces it with the authenticated user.
    """
    if request is None:
        return None
    user = request.__dict__.get("user")
    if isinstance(user, LazyObject):
        user = user._wrapped
        if user is empty:
            return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


def current_user_id() -> int | None:
    ctx = current()
    return user_id_of_request(ctx.request) or ctx.user_id
