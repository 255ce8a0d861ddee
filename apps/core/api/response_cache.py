"""The polled reads' answers, cached per user and dropped by any write to a table they read.

A dashboard and an API client poll the same lists every few seconds (orders, positions,
bots, portfolio, ...), and most polls find nothing changed. A view marked ``@cached_read``
keeps its answer per user and URL, and serves it again while no table it read has been
written since:

- **Reading.** While the view computes its answer, every SQL statement it runs through
  Django's connection is looked at, and the tables it names are its dependencies. The
  answer is kept with the *version* of each of those tables, read before the view ran.
- **Writing.** Every ``INSERT``/``UPDATE``/``DELETE`` through Django's connection, in any
  process (web, Celery, shell), gives its table a new version: at once outside a
  transaction, or when the transaction commits (a rolled-back write changes nothing). This
  covers ``save()``, ``QuerySet.update()``, ``bulk_create()``, cascades and raw SQL on
  Django's cursor alike: no list of signals to keep up to date.
- **Serving.** One Redis round trip fetches the kept answer with its tables' current
  versions; all equal: the answer is served without running the view. Authentication,
  permissions and rate limits run for every request as before.

A version is a random token, never a counter: a version lost to an eviction or a flush is
missing (a miss), never equal to an old one. Versions are read before the view runs, so a
write committed while it runs leaves the answer under the old version (the next request
misses). What an answer depends on beyond the database is in its key: the user, the
absolute URL (scheme, host, path, query), the ``Accept`` header, the active time zone and
language. Its other inputs (the
clock: "today" in the portfolio summary) are bounded by ``API_RESPONSE_CACHE_SECONDS``.

A table is everybody's: one user's order invalidates every user's cached orders list, which
costs a recomputation, never a stale answer. Writes outside Django's connection are not seen
(the candle store's binary reads and ``COPY`` use their own psycopg cursor): a cached view must
not read candles. On when the cache is Redis (shared by every process); the embedded default
(one process, the local memory cache) computes every answer.

Redis down: answers are computed (as without the cache) and writes succeed; a process whose
new versions could not be written serves no kept answer until it has written them (with its
next write or read). A kept answer another process serves meanwhile is at most
``API_RESPONSE_CACHE_SECONDS`` old; a restarted Redis (no persistence) has lost them all.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import get_language
from rest_framework.response import Response

logger = logging.getLogger(__name__)

ENTRY_PREFIX = "api:resp:"
TABLE_PREFIX = "api:table:"

_WRITE = re.compile(r'\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?([A-Za-z0-9_]+)"?', re.IGNORECASE)
_QUOTED = re.compile(r'"([A-Za-z0-9_]+)"')

# While a cached view computes its answer: the tables its statements named.
_reading: ContextVar[set[str] | None] = ContextVar("response_cache_reading", default=None)

# Per view action, the tables its answers were seen to read (this process's knowledge; it only grows).
_learned: dict[str, frozenset[str]] = {}
_known_tables: frozenset[str] | None = None


def enabled() -> bool:
    return settings.API_RESPONSE_CACHE


def _tables() -> frozenset[str]:
    global _known_tables
    if _known_tables is None:
        from django.apps import apps

        _known_tables = frozenset(m._meta.db_table for m in apps.get_models(include_auto_created=True))
    return _known_tables


# --- writes -------------------------------------------------------------------------------


# Tables whose new version could not be written (Redis unreachable): sent again with the
# next bump, and until then this process serves no kept answer.
_unsent: set[str] = set()


def bump(tables: set[str] | frozenset[str]) -> None:
    """Give each table a new version: every answer that read one of them is stale.

    Never raises: a write has committed by now, and the cache being down must not fail it.
    """
    todo = set(tables) | _unsent
    if not todo:
        return
    token = uuid.uuid4().hex
    try:
        cache.set_many({TABLE_PREFIX + table: token for table in todo}, timeout=None)
    except Exception:  # Redis down or restarting
        _unsent.update(todo)
        logger.warning(
            "response cache: new versions of %s not written; kept answers are not served", sorted(todo)
        )
        return
    _unsent.difference_update(todo)


class _Pending:
    """The tables written in the open transaction, bumped by one on_commit callback."""

    def __init__(self) -> None:
        self.tables: set[str] = set()

    def __call__(self) -> None:
        bump(self.tables)


def _commit_still_to_come(connection) -> bool:
    """Whether the write is inside a transaction that will commit later.

    The outermost atomic block of Django's ``TestCase`` never commits (nor runs commit
    callbacks): in such a test the write is visible at once to the one connection, so its
    table is bumped at once too.
    """
    blocks = connection.atomic_blocks
    return connection.in_atomic_block and bool(blocks) and not getattr(blocks[0], "_from_testcase", False)


def _written(connection, table: str) -> None:
    if not _commit_still_to_come(connection):
        bump({table})
        return
    pending = getattr(connection, "_response_cache_pending", None)
    # A savepoint rolled back drops the callbacks registered inside it: look for ours.
    if pending is None or not any(func is pending for _sids, func, _robust in connection.run_on_commit):
        pending = _Pending()
        connection._response_cache_pending = pending
        transaction.on_commit(pending, using=connection.alias)
    pending.tables.add(table)


def execute_wrapper(execute, sql, params, many, context):
    """Installed on every database connection (``install``): notes reads and writes."""
    reading = _reading.get()
    if reading is not None:
        reading.update(name for name in _QUOTED.findall(sql) if name in _tables())
    result = execute(sql, params, many, context)
    if enabled():
        write = _WRITE.match(sql)
        if write is not None:
            _written(context["connection"], write.group(1))
    return result


def install(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver: wrap the new connection's statements (once)."""
    if execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(execute_wrapper)


# --- reads --------------------------------------------------------------------------------


def table_version(*tables: str) -> str | None:
    """The tables' current version (one text for them all, read in one round trip), for a value
    kept in this process while they are unchanged.

    ``None`` when off, when one is unknown (then started, for the next read), unreachable, or
    while this process has versions it could not send: the caller reads the database.
    """
    if not enabled():
        return None
    if _unsent:
        bump(set())
        if _unsent:
            return None
    keys = [TABLE_PREFIX + table for table in tables]
    try:
        versions = cache.get_many(keys)
        for key in keys:
            if key not in versions:
                cache.add(key, uuid.uuid4().hex, timeout=None)
    except Exception:  # the cache is down: read the database
        return None
    if len(versions) < len(keys):
        return None
    return "|".join(versions[key] for key in keys)


class KeptPerProcess:
    """Values kept in this process, each with the version of the tables it was read from
    (``table_version``): one is served only while that version is still the current one.

    ``get`` answers ``MISSING`` when nothing is kept under that version (or there is no version:
    the caller reads the database and keeps nothing). At most ``max_size`` values: past it,
    it starts over.
    """

    MISSING: Any = object()

    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max_size
        self._values: dict[Any, tuple[str, Any]] = {}

    def get(self, key: Any, version: str | None) -> Any:
        kept = self._values.get(key)
        if kept is None or version is None or kept[0] != version:
            return self.MISSING
        return kept[1]

    def keep(self, key: Any, version: str | None, value: Any) -> None:
        if version is None:
            return
        if len(self._values) >= self.max_size:
            self._values.clear()
        self._values[key] = (version, value)

    def clear(self) -> None:
        self._values.clear()


def _compute(compute: Callable[[], Response]) -> tuple[Response, set[str]]:
    tables: set[str] = set()
    token = _reading.set(tables)
    try:
        return compute(), tables
    finally:
        _reading.reset(token)


def serve(view, request, compute: Callable[[], Response]) -> Response:
    """The view's answer: the kept one while its tables are unchanged, else ``compute()``'s."""
    user = getattr(request, "user", None)
    if not enabled() or request.method != "GET" or user is None or not user.is_authenticated:
        return compute()
    action = f"{type(view).__module__}.{type(view).__qualname__}.{getattr(view, 'action', None) or 'get'}"
    # The user's own row is read by authentication (not inside the view) and answers use it.
    deps = _learned.get(action)
    if deps is None:
        response, tables = _compute(compute)
        if response.status_code == 200:
            _learned[action] = frozenset(tables | {user._meta.db_table})
        return response
    url = request.build_absolute_uri()
    # Dates render in the active time zone (a session's user's, UTC for a token), text in the language.
    vary = f"{url}\n{request.META.get('HTTP_ACCEPT', '')}\n{timezone.get_current_timezone_name()}\n{get_language()}"
    digest = hashlib.blake2b(vary.encode(), digest_size=16).hexdigest()
    entry_key = f"{ENTRY_PREFIX}{user.pk}:{digest}"
    ordered = sorted(deps)
    version_keys = [TABLE_PREFIX + table for table in ordered]
    if _unsent:
        bump(set())
        if _unsent:  # still unreachable
            return compute()
    try:
        found = cache.get_many([entry_key, *version_keys])
    except Exception:  # the cache is down: answer from the database, as without it
        return compute()
    versions = tuple(found.get(key) for key in version_keys)
    entry = found.get(entry_key)
    if None not in versions and entry is not None and entry[0] == (tuple(ordered), versions):
        return Response(entry[1], status=200, headers=entry[2])
    if None in versions:
        # Unknown (never written, evicted, flushed): start them; this answer is not kept.
        started = {
            key: uuid.uuid4().hex
            for key, version in zip(version_keys, versions, strict=True)
            if version is None
        }
        with contextlib.suppress(Exception):  # down again: the next request starts them
            cache.set_many(started, timeout=None)
        return compute()
    response, tables = _compute(compute)
    if not tables <= deps:
        _learned[action] = deps | tables  # kept from the next request on
    elif response.status_code == 200:
        headers = dict(response.items())
        headers.pop("Content-Type", None)
        entry = ((tuple(ordered), versions), response.data, headers)
        with contextlib.suppress(Exception):  # down: the next request computes it again
            cache.set(entry_key, entry, timeout=settings.API_RESPONSE_CACHE_SECONDS)
    return response


def cached_read(method: Callable[..., Response]) -> Callable[..., Response]:
    """Mark a view's GET handler (``list``, ``retrieve``, ``get``) as served from the cache."""

    @functools.wraps(method)
    def handler(self, request, *args: Any, **kwargs: Any) -> Response:
        return serve(self, request, lambda: method(self, request, *args, **kwargs))

    return handler
