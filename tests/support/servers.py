"""Real processes for tests: a Celery worker on Redis and an ASGI server.

Both run against the *test* database that pytest-django created, so tests that
use them must commit their data (``django_db(transaction=True)``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the test database pytest-django created (PostgreSQL only)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("real worker/server tests need DATABASE_URL pointing at PostgreSQL")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db.get('USER') or 'postgres'}{password}@{host}:{port}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    # settings.REDIS_URL is already this xdist worker's own database; without the
    # variable the child's settings do not shift it a second time.
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_XDIST_WORKER"}
    env.update(
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        DJANGO_ENV="test",
        PYTHONUNBUFFERED="1",
        SHARED_DATA_DIR=str(settings.SHARED_DATA_DIR),
    )
    env.update(extra)
    return env


def _stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def celery_worker(
    *,
    concurrency: int = 2,
    hostname: str = "test-worker",
    log_path: Path | None = None,
    queues: str = "default,backtests,bots",
    start_timeout: float = 30.0,
    app_module: str = "config",
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """Start ``celery -A <app_module> worker`` on Redis; yields once it answers a ping (within
    ``start_timeout`` s). ``app_module`` other than ``config`` wraps the project's app (a test hook);
    ``env`` adds environment variables (settings) of the worker."""
    from config.celery import app

    log = open(log_path or os.devnull, "w")  # noqa: SIM115 - closed below
    name = f"{hostname}-{os.getpid()}-{time.monotonic_ns()}@localhost"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app_module,
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            f"--hostname={name}",
            f"--queues={queues}",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=child_env(**(env or {})),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {process.returncode}")
            replies = app.control.ping(destination=[name], timeout=0.5)
            if replies:
                break
        else:
            raise RuntimeError(f"celery worker did not answer a ping within {start_timeout:g} s")
        process.celery_hostname = name  # type: ignore[attr-defined]
        yield process
    finally:
        _stop(process)
        log.close()


@contextlib.contextmanager
def asgi_server(
    *, log_path: Path | None = None, env: dict[str, str] | None = None, server: str = "serve"
) -> Iterator[str]:
    """Start the web server as production runs it (``manage.py serve``: uvicorn) serving
    ``config.asgi`` on a free port; yields its base URL. ``env`` adds environment variables
    (settings) of the server; ``server="daphne"`` starts daphne instead (a benchmark compares)."""
    port = free_port()
    log = open(log_path or os.devnull, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        server_command(server, port),
        cwd=ROOT,
        env=child_env(**(env or {})),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{server} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"{base}/health/", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        _stop(process)
        log.close()


def server_command(server: str, port: int, *, workers: int = 1) -> list[str]:
    """The web server's command line: ``manage.py serve`` (without the embedded worker), or
    ``"daphne"`` (one process, which benchmarks compare it with).

    A test server stops within a second: production's 10 s grace for running requests would
    be spent waiting for sockets a test left open."""
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
    return [sys.executable, "manage.py", "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--graceful-timeout", "1"]  # fmt: skip


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes ``pids`` have used so far, read from /proc (gone: 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a worker's sandbox runners), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found
