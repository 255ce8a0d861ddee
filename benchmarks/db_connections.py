"""PostgreSQL connections under ASGI: daphne + concurrent API clients, counted in pg_stat_activity.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading_h3 \
        .venv/bin/python benchmarks/db_connections.py [--clients 16 32] [--requests 20] [--pool-sizes 8 0]

For each connection setting (``DATABASE_POOL_MAX_SIZE``: the psycopg pool's
size, 0 = no pool, a connection per request) and each client count, starts
daphne on the database in DATABASE_URL (migrated if needed), sends
``clients x requests`` authenticated ``GET /api/v1/orders/`` from as many
threads, and prints: requests OK / failed, peak connections to the database
(sampled every 20 ms from pg_stat_activity, this script's own sampler
excluded, as are connections that existed before the server started), connections
still open 5 s after the load, and latency p50/p95.
The benchmark's user and orders are deleted afterwards. The machine is shared,
so latencies are noisy; connection counts are what this measures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trading_bench")


def conninfo(dbname: str | None = None) -> dict:
    import environ

    config = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    if config["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("this benchmark needs DATABASE_URL pointing at PostgreSQL")
    return {
        "host": config.get("HOST") or "127.0.0.1",
        "port": config.get("PORT") or 5432,
        "user": config.get("USER") or "postgres",
        "password": config.get("PASSWORD") or None,
        "dbname": dbname or config["NAME"],
    }


def ensure_database() -> None:
    import psycopg

    name = conninfo()["dbname"]
    with psycopg.connect(**conninfo("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ConnectionSampler(threading.Thread):
    """Samples the client connections to the database opened after it was created (the server's)."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(**conninfo("postgres"), autocommit=True)
        self.dbname = conninfo()["dbname"]
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()
        self.baseline = set(self._pids())

    def _pids(self) -> list[int]:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid()",
            [self.dbname],
        ).fetchall()
        return [row[0] for row in rows]

    def count(self) -> int:
        return len(set(self._pids()) - self.baseline)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self.count())
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def start_daphne(pool_size: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_POOL_MAX_SIZE": str(pool_size),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/health/", timeout=1) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get(url: str, token: str) -> tuple[int, float]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            json.loads(response.read())
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0
    return status, (time.perf_counter() - started) * 1000


def run_load(base: str, token: str, clients: int, requests: int, sampler: ConnectionSampler) -> dict:
    url = f"{base}/api/v1/orders/"
    before = sampler.count()
    sampler.start()

    def client(_: int) -> list[tuple[int, float]]:
        return [get(url, token) for _ in range(requests)]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = [r for batch in pool.map(client, range(clients)) for r in batch]
    elapsed = time.perf_counter() - started
    sampler.stop()
    time.sleep(5)
    after = sampler.count()
    sampler.conn.close()
    latencies = sorted(ms for status, ms in results if status == 200)
    ok = sum(1 for status, _ in results if status == 200)
    return {
        "ok": ok,
        "failed": len(results) - ok,
        "statuses": sorted({status for status, _ in results}),
        "before": before,
        "peak": sampler.peak,
        "after_5s": after,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] if latencies else None,
        "rps": len(results) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--pool-sizes", type=int, nargs="+", default=[8, 0])
    args = parser.parse_args()

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import RefreshToken

    from apps.accounts.models import User
    from apps.orders.models import Order

    call_command("migrate", verbosity=0)
    user = User.objects.create_user(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password=None)
    Order.objects.bulk_create(
        Order(owner=user, exchange="binance", symbol="BTC/USDT", side="buy", type="limit",
              amount=Decimal("0.01"), price=Decimal(60000 + k), status="open")
        for k in range(60)
    )  # fmt: skip
    token = str(RefreshToken.for_user(user).access_token)
    from django.db import connection

    connection.close()  # this process's connection is not the server's

    import psycopg

    with psycopg.connect(**conninfo("postgres")) as conn:
        max_connections = conn.execute("SHOW max_connections").fetchone()[0]
    print(f"PostgreSQL max_connections {max_connections}; {os.cpu_count()} CPUs (shared with other work)")
    header = "pool  clients  requests  ok   failed  conns before/peak/after 5s  p50 ms  p95 ms  req/s"
    print(header)
    try:
        for pool_size in args.pool_sizes:
            for clients in args.clients:
                sampler = ConnectionSampler()  # counts only connections opened from here on
                process, base = start_daphne(pool_size)
                try:
                    get(f"{base}/api/v1/orders/", token)  # warm-up: imports, first connection
                    r = run_load(base, token, clients, args.requests, sampler)
                finally:
                    stop(process)
                label = str(pool_size) if pool_size else "none"
                print(
                    f"{label:<5} {clients:>7}  {clients * args.requests:>8}  {r['ok']:>4} {r['failed']:>6}"
                    f"  {r['before']:>6}/{r['peak']:>3}/{r['after_5s']:<3}"
                    f"                  {r['p50_ms']:>6.1f}  {r['p95_ms']:>6.1f}  {r['rps']:>5.1f}"
                    + ("" if not r["failed"] else f"  statuses {r['statuses']}"),
                    flush=True,
                )
    finally:
        user.delete()


if __name__ == "__main__":
    main()
