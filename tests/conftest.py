"""Shared fixtures.

Real services: tests marked ``worker`` start a real Celery worker on Redis,
and ``live_server_url`` a real daphne ASGI server, both on the test database.
They need ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL``; without them those
tests are skipped with the reason (``.ci/run`` always sets both).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db.utils import OperationalError
from rest_framework.test import APIClient

from tests.factories import PASSWORD, UserFactory
from tests.support import servers

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / "var" / "test-logs"


def _on_postgresql() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


# Tests that start real processes (a Celery worker, daphne, Chromium: session fixtures; the
# fault tests' private stack: tests/faults/conftest.py).
REAL_SERVICE_FIXTURES = {"celery_worker", "live_server_url", "browser", "fault_stack"}


def pytest_collection_modifyitems(config, items):
    # SQLite (the embedded default) stores numeric columns as 8-byte floats, so more than
    # ~15 significant digits only survive on PostgreSQL, which production and CI use.
    skip_decimals = pytest.mark.skip(
        reason="exact 18-place decimals need PostgreSQL (DATABASE_URL); SQLite stores floats"
    )
    for item in items:
        if item.get_closest_marker("postgres_decimals") and not _on_postgresql():
            item.add_marker(skip_decimals)
        # Under ``pytest -n N --dist loadgroup`` these all run on one xdist worker, so
        # one worker process, one ASGI server and one Chromium serve them all instead
        # of one set per xdist worker competing for the same cores.
        if REAL_SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("real_services"))


@pytest.fixture(autouse=True)
def _debounce_windows_forgotten():
    """Each test starts knowing no debounce window of an earlier one (``apps.core.cache.first_in_window``):
    ids come round again (SQLite reuses a rolled-back row's), and a test may delete the key."""
    from apps.core import cache as debounce_memory

    debounce_memory.forget()


@pytest.fixture(scope="session", autouse=True)
def _flush_by_delete():
    """Transactional tests (``transaction=True``) end with a flush of every table: on PostgreSQL a
    ``TRUNCATE`` of all ~60 tables, which took ~0.23 s (it replaces each table's files), where
    deleting the few rows the test wrote takes ~0.01 s. The same end state: every table empty,
    sequences not reset (as ``TRUNCATE`` without ``RESTART IDENTITY``); foreign keys are
    deferrable, so one transaction deletes in any order; the tables are locked first as
    ``TRUNCATE`` locks them, so a worker or server still writing is waited for, not left behind.
    A flush that resets sequences or cascades keeps Django's ``TRUNCATE``."""
    if not _on_postgresql():
        yield
        return
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if not tables or reset_sequences or allow_cascade:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        names = [self.quote_name(table) for table in tables]
        return [
            "SET CONSTRAINTS ALL DEFERRED",
            f"LOCK TABLE {', '.join(names)} IN ACCESS EXCLUSIVE MODE",
            *(f"DELETE FROM {name}" for name in names),
        ]

    flush = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        # The tables are locked one after another: a worker or server still writing to two of
        # them in the other order deadlocks with the flush, and PostgreSQL may roll the flush
        # back (its victim). Its writer has finished once the deadlock is broken: flush again.
        for attempt in range(1, FLUSH_ATTEMPTS + 1):
            try:
                return flush(self, sql_list)
            except OperationalError as exc:
                if attempt == FLUSH_ATTEMPTS or "deadlock detected" not in str(exc):
                    raise
                time.sleep(0.1 * attempt)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        patch.setattr(DatabaseOperations, "execute_sql_flush", execute_sql_flush)
        yield


FLUSH_ATTEMPTS = 5


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real exchange data beside the repo (``SHARED_DATA_DIR``, default ``../shared/data``)."""
    path = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not (path / "ohlcv").is_dir():
        pytest.fail(f"shared data not found at {path}; set SHARED_DATA_DIR")
    return path


class ThrottleClock:
    """The API throttle's clock, stopped at the test's start: its windows never end mid-test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def throttle_clock(monkeypatch) -> ThrottleClock:
    """Stops the rate limits' clock (apps.core.api.throttling counts in fixed windows); ``advance`` it."""
    from apps.core.api.throttling import ApiRateThrottle

    clock = ThrottleClock()
    monkeypatch.setattr(ApiRateThrottle, "timer", clock)
    return clock


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def auth_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _require_real_services() -> None:
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (a real Redis); .ci/run sets it")
    if not _on_postgresql():
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL; .ci/run sets it")


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """A real ``celery worker`` process on Redis, using the test database."""
    _require_real_services()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with servers.celery_worker(log_path=LOG_DIR / f"celery-worker-{os.getpid()}.log") as process:
        yield process


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker):
    """A real daphne ASGI server (HTTP + WebSockets) on a free port, using the test database."""
    _require_real_services()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with servers.asgi_server(log_path=LOG_DIR / f"asgi-server-{os.getpid()}.log") as url:
        yield url


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread; the test's own
    # ORM calls are still plain synchronous code, so Django's guard is a false alarm.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_server_url):
    """A fresh browser page on the live server; collects console errors in ``page.console_errors``."""
    context = browser.new_context(base_url=live_server_url)
    page = context.new_page()
    page.console_errors = []
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and page.console_errors.append(f"{message.text} at {message.location.get('url')}")
        ),
    )
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    yield page
    context.close()
