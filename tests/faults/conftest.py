"""The fault tests' stack: private PostgreSQL and Redis, and the app's processes on them.

``private`` (per module) starts the throw-away servers of ``tests.support.faults`` and
migrates the private database once. ``fault_stack`` (per module too: starting the
processes takes a while, and they must survive each test's faults) points this test process at
them (the ORM's default connection, the cache, the channel layer and the Celery
broker), starts a Celery worker, beat and daphne on them, and puts everything back
afterwards. The tests never touch the machine's PostgreSQL or Redis, which other
tests use at the same time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from tests.support import faults, servers

LOG_DIR = servers.ROOT / "var" / "test-logs"

# The app processes of these tests: fast clocks so that minutes of behaviour fit in seconds.
CHILD_ENV = {
    "MARKETDATA_REPLAY_SPEED": "60",  # a 1m replay candle closes every second
    "HEARTBEAT_SECONDS": "2",
    "BACKTEST_HEARTBEAT_TIMEOUT_SECONDS": "8",  # a job without a heartbeat this long is reaped
    "JOBS_REAP_SECONDS": "5",  # by the reaper, run this often (production: 30 s)
    # A backtest's lookahead check sends no heartbeat (it starts with one): it must end well
    # within the timeout above, or the reaper takes a live run for lost (production: 20 s of 60).
    "BACKTEST_LOOKAHEAD_SECONDS": "3",
    "BOT_TICK_LEASE_SECONDS": "10",  # a tick of a dead worker is ticked again after this
    "HEALTH_CHECK_TIMEOUT_SECONDS": "3",
    "DATABASE_POOL_TIMEOUT": "5",
}


@pytest.fixture(scope="module")
def private():
    reason = faults.unavailable_reason()
    if reason:
        pytest.skip(f"fault tests need private servers: {reason}")
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
        pytest.skip("fault tests need DATABASE_URL (PostgreSQL) and REDIS_URL; .ci/run sets them")
    with faults.private_servers(env=CHILD_ENV) as pair:
        yield pair


@contextlib.contextmanager
def _default_database(url: str) -> Iterator[None]:
    """The ORM's ``default`` connection on ``url`` (same engine, pool and options)."""
    import environ

    target = environ.Env.db_url_config(url)
    conn = connections["default"]
    saved = {key: conn.settings_dict[key] for key in ("NAME", "HOST", "PORT", "USER", "PASSWORD")}
    conn.close()
    conn.close_pool()
    conn.settings_dict.update({key: target.get(key, "") for key in saved})
    try:
        yield
    finally:
        conn.close()
        conn.close_pool()
        conn.settings_dict.update(saved)


@contextlib.contextmanager
def _celery_broker(url: str) -> Iterator[None]:
    from config.celery import app

    saved = app.conf.broker_url
    app.pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url
    try:
        yield
    finally:
        if app._pool is not None:
            app.pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None
        app.conf.broker_url = saved


@dataclass
class Stack:
    postgres: faults.PrivatePostgres
    redis: faults.PrivateRedis
    base_url: str = ""
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    log_dir: Path = LOG_DIR

    def env(self) -> dict[str, str]:
        return servers.child_env(DATABASE_URL=self.postgres.url(), REDIS_URL=self.redis.url(), **CHILD_ENV)

    def start_worker(
        self, name: str = "worker", *, queues: str = "default,backtests,bots", concurrency: int = 3
    ):
        self.processes[name] = _start(self, name, "worker", queues=queues, concurrency=concurrency)
        return self.processes[name]

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            servers._stop(process)

    def ensure_up(self) -> None:
        if not self.postgres.running():
            self.postgres.start()
        if self.redis.process is None or self.redis.process.poll() is not None:
            self.redis.start()

    def worker_answers(self, name: str) -> bool:
        from config.celery import app

        hostname = self.processes[name].celery_hostname  # type: ignore[attr-defined]
        try:
            return bool(app.control.ping(destination=[hostname], timeout=1))
        except Exception:
            return False


def _start(stack: Stack, name: str, kind: str, **options) -> subprocess.Popen:
    log = open(stack.log_dir / f"faults-{name}-{os.getpid()}.log", "a")  # noqa: SIM115 - child keeps it
    hostname = f"faults-{name}-{os.getpid()}-{time.monotonic_ns()}@localhost"
    if kind == "worker":
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=threads",
                   f"--concurrency={options['concurrency']}", f"--hostname={hostname}",
                   f"--queues={options['queues']}", "--without-gossip", "--without-mingle", "--loglevel=INFO"]  # fmt: skip
    elif kind == "beat":
        schedule = stack.log_dir / f"faults-beat-{os.getpid()}.pid"
        command = [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO",
                   f"--pidfile={schedule}"]  # fmt: skip
    else:
        port = servers.free_port()
        stack.base_url = f"http://127.0.0.1:{port}"
        command = servers.server_command("serve", port)
    process = subprocess.Popen(
        command, cwd=servers.ROOT, env=stack.env(), stdout=log, stderr=subprocess.STDOUT
    )
    process.celery_hostname = hostname  # type: ignore[attr-defined]
    return process


def _wait_started(stack: Stack) -> None:
    import urllib.request

    from config.celery import app

    deadline = time.monotonic() + 60
    pending = set(stack.processes)
    while pending:
        for name in list(pending):
            process = stack.processes[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} (logs in {stack.log_dir})")
            if name == "web":
                try:
                    with urllib.request.urlopen(f"{stack.base_url}/health/", timeout=1):
                        pending.discard(name)
                except OSError:
                    pass
            elif name == "beat" or app.control.ping(destination=[process.celery_hostname], timeout=0.5):
                pending.discard(name)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sorted(pending)} did not start within 60 s (logs in {stack.log_dir})")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def fault_stack(private, django_db_blocker) -> Iterator[Stack]:
    """Worker, beat and daphne on the private servers; this process's ORM, cache, layer and broker too.

    Module-scoped (starting them takes a while on a busy machine): the tests of a module share
    the processes, which is the point, since they must survive each test's faults. The
    test process is pointed back at the machine's services when the module ends.
    """
    from django.test import override_settings

    postgres, redis_server = private
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    layer = settings.CHANNEL_LAYERS["default"]
    overrides = override_settings(
        REDIS_URL=redis_server.url(),
        CACHES={**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": redis_server.url()}},
        CHANNEL_LAYERS={"default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": [redis_server.url()]}}},
    )
    stack = Stack(postgres, redis_server)
    with (
        django_db_blocker.unblock(),
        overrides,
        _default_database(postgres.url()),
        _celery_broker(redis_server.url()),
    ):
        try:
            stack.start_worker("worker")
            stack.processes["beat"] = _start(stack, "beat", "beat")
            stack.processes["web"] = _start(stack, "web", "web")
            _wait_started(stack)
            yield stack
        finally:
            for name in list(stack.processes):
                stack.stop(name)


@pytest.fixture(autouse=True)
def _servers_up_and_bots_stopped(request):
    """Every test starts with both servers up (one that failed mid-way may have left one stopped)
    and leaves no bot of its own running into the next test."""
    if "fault_stack" not in request.fixturenames:
        yield
        return
    stack = request.getfixturevalue("fault_stack")
    stack.ensure_up()
    yield
    stack.ensure_up()
    from apps.bots.models import Bot

    connections.close_all()
    Bot.objects.update(status=Bot.Status.STOPPED)
