"""Private PostgreSQL and Redis servers that fault tests may stop, kill and restart.

The machine's PostgreSQL (5432) and Redis (6379) are shared by every other test (and,
on a developer machine, by other work), so a fault test never touches them: it starts
a throw-away PostgreSQL cluster (``initdb`` into a temporary directory, its own port
and socket directory) and a ``redis-server`` without persistence on a free port, and
points the app processes it starts (Celery worker, beat, daphne) at those through
``DATABASE_URL``/``REDIS_URL``. Missing binaries: ``available()`` says why.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import ROOT, free_port

POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
DATABASE = "trading_faults"


def _postgres_bin() -> Path | None:
    for directory in sorted(glob.glob(POSTGRES_BIN_GLOB), reverse=True):
        if Path(directory, "initdb").exists() and Path(directory, "pg_ctl").exists():
            return Path(directory)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def unavailable_reason() -> str | None:
    """Why private servers cannot be started here, or ``None`` when they can."""
    if _postgres_bin() is None:
        return f"PostgreSQL server binaries (initdb, pg_ctl) not found in {POSTGRES_BIN_GLOB} or PATH"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run initdb as"
    return None


class PrivatePostgres:
    """A throw-away PostgreSQL cluster: ``start()``, ``stop()``, ``restart()``, ``url``."""

    def __init__(self, directory: Path) -> None:
        self.bin = _postgres_bin()
        self.directory = directory
        self.data = directory / "data"
        self.socket_dir = directory / "socket"
        self.log = directory / "postgres.log"
        self.port = free_port()
        # initdb refuses to run as root: the cluster then belongs to the postgres user.
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=timeout)

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            shutil.chown(self.directory, self.run_as)
            shutil.chown(self.socket_dir, self.run_as)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            # Durability is not under test; a quick cluster is.
            conf.write(
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
            )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: clients are disconnected (a clean shutdown); ``immediate``: a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def url(self, database: str = DATABASE) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str = DATABASE) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


class PrivateRedis:
    """A ``redis-server`` on a free port with no persistence: a restart empties it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=open(self.directory / "redis.log", "a"),  # noqa: SIM115 - the child keeps it
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the private redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@contextlib.contextmanager
def private_servers(env: dict[str, str] | None = None) -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    """A migrated private PostgreSQL database and a private Redis, both removed afterwards.

    ``env``: settings for ``migrate`` (which installs the periodic tasks' intervals)."""
    directory = Path(tempfile.mkdtemp(prefix="faults-"))
    postgres, redis_server = PrivatePostgres(directory), PrivateRedis(directory)
    try:
        postgres.init()
        postgres.start()
        postgres.create_database()
        redis_server.start()
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": postgres.url(), "REDIS_URL": redis_server.url(),
                 "DJANGO_ENV": "test", **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
        if migrated.returncode:
            raise RuntimeError(f"migrate on the private database failed:\n{migrated.stderr[-3000:]}")
        yield postgres, redis_server
    finally:
        redis_server.stop()
        postgres.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
