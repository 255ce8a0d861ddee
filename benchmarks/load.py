"""Load benchmark (PostgreSQL + Redis): locust against the ASGI server, authenticated reads and paper orders.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading_bench_load \
    REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python benchmarks/load.py [--server serve daphne] [--processes 2]
                                            [--read-rps 300] [--order-rps 100] [--seconds 60]
    ... benchmarks/load.py --quick          # 20 s per phase, serve with 2 processes only

For each server setup (``serve``: the platform's web server, ``manage.py serve --workers
--processes`` (uvicorn); ``daphne``: one daphne process, for comparison) it starts the server on
the database in DATABASE_URL (created and migrated if needed) and runs two phases with locust
(headless, ``FastHttpUser``, one client per user at an equal share of the rate, each starting
at a random point of its period; statistics and CPU from the end of a 5 s ramp on):

1. **reads** at ``--read-rps``: JWT-authenticated GETs spread over the pages a dashboard and
   an API client poll — orders, positions, trades, bots, bot detail, portfolio summary,
   positions and balances, markets, the user's profile; target p95 < 50 ms, no errors;
2. **orders** at ``--order-rps``: paper market orders ``POST /api/v1/orders/`` (each filled at
   once by the paper exchange at the replay feed's price); target p95 < 100 ms, no errors.

It prints per phase and endpoint: requests, failures, achieved requests/s, p50/p95/p99 ms
(locust's percentiles), PASS/FAIL against the target, and the load average before and
after, since the machine may be shared. ``--users`` accounts (each with orders, a
position, bots and a funded paper account) spread the load like real users (per-user
throttles, owner-scoped queries); they and every row they made are deleted afterwards,
and so are the replay candles if this run stored them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trading_bench_load")
# Offline: paper orders fill at the replay feed's price over stored candles, no exchange is contacted.
os.environ["MARKETDATA_ONLINE"] = "false"

# (after ROOT is on the path)
from tests.support.servers import cpu_seconds, server_command

READ_TARGET_P95_MS = 50
ORDER_TARGET_P95_MS = 100

LOCUSTFILE = """
import itertools
import json
import os
import random
import time

import gevent
from locust import FastHttpUser, task

USERS = json.load(open(os.environ["LOAD_USERS_FILE"]))
_NEXT = itertools.count()
PERIOD = 1 / float(os.environ["LOAD_RATE_PER_USER"])


def paced(user):
    # Seconds until the user's next request: one per PERIOD, on the user's own phase. Not
    # locust's constant_throughput: it paces from the moment locust created the user, so a
    # random start in on_start is undone by the first wait and every user created in the same
    # spawn step fires in lockstep (strace showed all 50 clients sending within 10 ms, then
    # nothing for the rest of the period). A late request does not make the next ones bunch
    # up to catch up: the schedule restarts from now, as constant_throughput's does.
    user.next_at = max(user.next_at + PERIOD, time.perf_counter())
    return max(0.0, user.next_at - time.perf_counter())


class _Authenticated(FastHttpUser):
    abstract = True
    wait_time = paced

    def on_start(self):
        self.account = USERS[next(_NEXT) % len(USERS)]  # a client per account
        # As behind the TLS proxy production runs behind (settings: SECURE_PROXY_SSL_HEADER).
        self.headers = {"Authorization": "Bearer " + self.account["token"], "X-Forwarded-Proto": "https"}
        # Each user starts at a random point of its period, so the requests arrive at a steady
        # rate rather than as one burst per period.
        self.next_at = time.perf_counter() + random.random() * PERIOD
        gevent.sleep(max(0.0, self.next_at - time.perf_counter()))


class Reader(_Authenticated):
    def _get(self, path, name=None):
        self.client.get(path, headers=self.headers, name=name or path)

    @task(3)
    def orders(self):
        self._get("/api/v1/orders/")

    @task(1)
    def open_orders(self):
        self._get("/api/v1/orders/?status=open", name="/api/v1/orders/?status=open")

    @task(2)
    def positions(self):
        self._get("/api/v1/orders/positions/")

    @task(1)
    def trades(self):
        self._get("/api/v1/orders/trades/")

    @task(2)
    def bots(self):
        self._get("/api/v1/bots/")

    @task(1)
    def bot(self):
        self._get("/api/v1/bots/%d/" % random.choice(self.account["bots"]), name="/api/v1/bots/<id>/")

    @task(2)
    def portfolio_summary(self):
        self._get("/api/v1/portfolio/summary/")

    @task(1)
    def portfolio_positions(self):
        self._get("/api/v1/portfolio/positions/")

    @task(1)
    def balances(self):
        self._get("/api/v1/portfolio/balances/")

    @task(2)
    def markets(self):
        self._get("/api/v1/market-data/markets/")

    @task(1)
    def me(self):
        self._get("/api/v1/auth/me/")


class Trader(_Authenticated):
    @task
    def market_order(self):
        body = {"symbol": "BTC/USDT", "side": random.choice(["buy", "sell"]), "type": "market",
                "amount": "0.001"}
        with self.client.post("/api/v1/orders/", json=body, headers=self.headers, name="POST /api/v1/orders/",
                              catch_response=True) as response:
            if response.status_code != 201:
                response.failure("%s %s" % (response.status_code, (response.text or "")[:200]))
"""


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_database() -> None:
    import environ
    import psycopg

    config = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    if config["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("this benchmark needs DATABASE_URL pointing at PostgreSQL")
    if not os.environ.get("REDIS_URL"):
        sys.exit("this benchmark needs REDIS_URL (cache, channel layer, broker)")
    params = {
        "host": config.get("HOST") or "127.0.0.1",
        "port": config.get("PORT") or 5432,
        "user": config.get("USER") or "postgres",
        "password": config.get("PASSWORD") or None,
        "dbname": "postgres",
    }
    with psycopg.connect(**params, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{config["NAME"]}"')


def store_candles() -> tuple[int, bool]:
    """Real 1m BTC/USDT candles for the replay feed (the paper fills' price); (market id, stored now)."""
    import numpy as np
    from django.conf import settings
    from django.core.cache import cache

    from apps.backtests.engine import load_csv
    from apps.marketdata import store
    from apps.marketdata.services import candles_import_arrays, market_ensure

    market = market_ensure(exchange="binance", symbol="BTC/USDT")
    if store.last_open_time(market_id=market.id, timeframe="1m") is not None:
        return market.id, False
    data = load_csv(Path(settings.SHARED_DATA_DIR) / "ohlcv" / "binance_BTCUSDT_1m.csv.gz")
    data = data.slice(len(data) - 3000, len(data))
    ohlcv = np.column_stack([data.open, data.high, data.low, data.close, data.volume])
    candles_import_arrays(
        exchange="binance", symbol="BTC/USDT", timeframe="1m",
        ts=np.asarray(data.timestamp, dtype=np.int64), ohlcv=np.ascontiguousarray(ohlcv),
    )  # fmt: skip
    cache.delete(f"marketdata:replay:{market.id}")
    return market.id, True


def create_users(count: int) -> list[dict]:
    """Users with what the read endpoints list: orders, fills and a position, bots, a funded paper account."""
    from rest_framework_simplejwt.tokens import AccessToken

    from apps.accounts.models import User
    from apps.bots.models import Bot
    from apps.exchanges import services as exchange_services
    from apps.orders import services as orders
    from apps.orders.models import Order

    users = []
    for k in range(count):
        user = User.objects.create_user(email=f"bench-load-{uuid.uuid4().hex[:8]}@example.com", password=None)
        account = exchange_services.paper_account_get_or_create(user=user)
        account.max_volume_fraction = None
        account.save()
        exchange_services.paper_account_set_balances(
            account=account, balances={"USDT": "100000000", "BTC": "100"}
        )
        for _ in range(3):  # filled market orders: fills, trades and a position to list
            orders.order_place(owner=user, account=account, symbol="BTC/USDT", side="buy", type="market",
                               amount=Decimal("0.001"))  # fmt: skip
        Order.objects.bulk_create(
            Order(owner=user, paper_account=account, exchange="binance", symbol="BTC/USDT", side="buy",
                  type="limit", amount=Decimal("0.01"), price=Decimal(20000 + i), status="open")
            for i in range(40)
        )  # fmt: skip
        bots = [
            Bot.objects.create(owner=user, name=f"load {k}.{i}", strategy="sma_crossover",
                               params={"fast": 10, "slow": 30}, exchange="binance", symbol="BTC/USDT", timeframe="1h")
            for i in range(5)
        ]  # fmt: skip
        users.append({"id": user.pk, "token": str(AccessToken.for_user(user)), "bots": [b.pk for b in bots]})
    return users


def vacuum() -> None:
    """``VACUUM (ANALYZE)`` the benchmark's database: before the clock runs, and after its rows are deleted.

    Each run writes and deletes thousands of rows (orders, fills, paper trades, 3,000 candles). A
    PostgreSQL running without autovacuum (this machine's: ``SHOW autovacuum`` is off) keeps them
    as dead rows that every later run's scans step over (after one session's runs: 105,000 dead
    candle rows beside 3,000 live ones, 96,000 dead orders), with its planner statistics never
    brought up to date. Production's PostgreSQL vacuums by itself; the benchmark measures a
    database in that state.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


def start_server(kind: str, processes: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # The platform's web server (manage.py serve: uvicorn, --processes of it), or one daphne.
    command = server_command(kind, port, workers=processes)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **UNREACHED_RATE_LIMITS, **production_env()}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{kind} exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(
                urllib.request.Request(f"{base}/health/", headers={"X-Forwarded-Proto": "https"}), timeout=1
            ):
                return process, base
        except OSError:
            if time.monotonic() > deadline:
                stop_server(process)
                raise SystemExit(f"{kind} did not answer within 90 s; see {log}") from None
            time.sleep(0.3)


# The API's rate limits (docs/limits.md) stay on, so their counting is in the figures, at rates
# this load never reaches: 100 paper orders/s over 50 users is 120/minute each, past the
# default trading rate (60/minute) a person placing orders by hand gets.
UNREACHED_RATE_LIMITS = {
    f"{scope}_THROTTLE_RATE": "1000000/minute" for scope in ("USER", "ANON", "LOGIN", "TRADING", "RESEARCH")
}


def production_env() -> dict[str, str]:
    """The server runs with production settings (DEBUG off, JSON logs), as deployed behind a TLS proxy.

    The proxy's ``X-Forwarded-Proto: https`` comes with every locust request, so HTTPS redirects
    and secure cookies behave as in production. The encryption keys are this checkout's (the
    benchmark's users were made with them).
    """
    from django.conf import settings

    return {
        "DJANGO_ENV": "production",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # the users' tokens are signed with it
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
    }


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # uvicorn's workers too
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def warm_up(base: str, users: list[dict]) -> None:
    """Every server process imports its views and opens its pool before the clock runs."""
    paths = ["/api/v1/orders/", "/api/v1/bots/", "/api/v1/portfolio/summary/", "/api/v1/market-data/markets/"]
    for i in range(40):
        request = urllib.request.Request(
            base + paths[i % len(paths)],
            headers={
                "Authorization": f"Bearer {users[i % len(users)]['token']}",
                "X-Forwarded-Proto": "https",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


# Users start over this many seconds; the statistics are reset once all of them run, and
# the CPU is metered from then on too: the figures are of the full rate, not of the ramp
# (nor of the caches every process fills in its first seconds).
RAMP_SECONDS = 5


def run_locust(
    *, base: str, user_class: str, rps: float, seconds: int, users_file: Path, tmp: Path, meter: CpuMeter
) -> list[dict]:
    """Run locust headless at ``rps`` requests/s in total for ``seconds`` after its ramp; its per-endpoint
    stats rows. ``meter`` measures the CPU of the same window."""
    locustfile = tmp / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    # One simulated client per account, each at an equal share of the rate and on its own phase
    # (``paced`` in the locustfile: paced together, N clients queued behind each other once per
    # period, which looked like locust's latency growing with its clients; docs/faults.md, "Load").
    simulated = len(json.loads(users_file.read_text()))
    per_user = rps / simulated
    prefix = tmp / user_class.lower()
    env = {**os.environ, "LOAD_USERS_FILE": str(users_file), "LOAD_RATE_PER_USER": str(per_user)}
    command = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", base,
               "-u", str(simulated), "-r", str(simulated / RAMP_SECONDS), "--reset-stats",
               "-t", f"{RAMP_SECONDS + seconds + 1}s", "--csv", str(prefix), "--only-summary",
               "--loglevel", "WARNING", "--stop-timeout", "5", user_class]  # fmt: skip
    with (tmp / f"{user_class.lower()}.log").open("w") as log:
        locust = subprocess.Popen(command, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=log)
        time.sleep(RAMP_SECONDS + 1)  # locust's own start, then the ramp
        with meter:
            locust.wait()
    with open(f"{prefix}_stats.csv") as handle:
        return list(csv.DictReader(handle))


def processes(*, group: int | None = None, name: str | None = None) -> list[int]:
    """Pids of a process group or of every process named ``name`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            in_group = group is not None and os.getpgid(int(entry.name)) == group
            named = name is not None and (entry / "comm").read_text().strip() == name
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if in_group or named:
            pids.append(int(entry.name))
    return pids


class CpuMeter:
    """CPU per request of the server, locust, PostgreSQL and Redis over one phase.

    On a shared machine the latency figures say little; where the CPU goes per request does.
    """

    def __init__(self, server: subprocess.Popen) -> None:
        self.parts = {
            "server": lambda: processes(group=server.pid),
            "postgres": lambda: processes(name="postgres"),
            "redis": lambda: processes(name="redis-server"),
        }

    def __enter__(self) -> CpuMeter:
        self.start = {part: cpu_seconds(find()) for part, find in self.parts.items()}
        self.server_pids = self.parts["server"]()
        self.per_process = {pid: cpu_seconds([pid]) for pid in self.server_pids}
        self.children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.used = {part: cpu_seconds(find()) - self.start[part] for part, find in self.parts.items()}
        self.per_process = {pid: cpu_seconds([pid]) - used for pid, used in self.per_process.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.used["locust"] = (children.ru_utime - self.children.ru_utime) + (
            children.ru_stime - self.children.ru_stime
        )
        self.wall = time.monotonic() - self.wall

    def report(self, rows: list[dict]) -> None:
        requests = sum(int(row["Request Count"]) for row in rows if row["Name"] == "Aggregated") or 1
        parts = ", ".join(f"{part} {seconds / requests * 1000:.1f}" for part, seconds in self.used.items())
        busy = sum(self.used.values()) / self.wall
        print(
            f"    CPU per request (ms): {parts}; all of them kept {busy:.2f} of {os.cpu_count()} cores busy"
        )
        # One process runs Python on one core at most (the GIL): a busy one queues its requests.
        shares = sorted((used / self.wall for used in self.per_process.values() if used > 0.01), reverse=True)
        print(f"    server processes, cores each: {', '.join(f'{share:.2f}' for share in shares)}")


def report(phase: str, rows: list[dict], target_ms: float, rps: float) -> bool:
    print(f"  {phase}: target {rps:g} req/s, p95 < {target_ms:g} ms, no errors")
    print(
        f"    {'endpoint':<36} {'requests':>8} {'failed':>6} {'req/s':>7} {'p50':>5} {'p95':>5} {'p99':>5} ms"
    )
    ok = True
    for row in rows:
        name = row["Name"] if row["Name"] != "Aggregated" else "all"
        line = (
            f"    {name[:36]:<36} {row['Request Count']:>8} {row['Failure Count']:>6} "
            f"{float(row['Requests/s']):>7.1f} {row['50%']:>5} {row['95%']:>5} {row['99%']:>5}"
        )
        if row["Name"] == "Aggregated":
            achieved = float(row["Requests/s"])
            p95 = float(row["95%"] if row["95%"] != "N/A" else "inf")
            failures = int(row["Failure Count"])
            ok = failures == 0 and p95 < target_ms and achieved >= 0.95 * rps
            line += (
                "   "
                + ("PASS" if ok else "FAIL")
                + (f" (achieved {achieved:.0f} of {rps:g} req/s)" if achieved < 0.95 * rps else "")
            )
        print(line)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", nargs="+", choices=["serve", "daphne"], default=["serve", "daphne"])
    parser.add_argument("--processes", type=int, default=2, help="manage.py serve --workers")
    parser.add_argument("--read-rps", type=float, default=300)
    parser.add_argument("--order-rps", type=float, default=100)
    parser.add_argument("--seconds", type=int, default=60, help="per phase")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="20 s per phase, serve only, 20 users")
    parser.add_argument("--skip-orders", action="store_true")
    parser.add_argument("--skip-reads", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.server, args.users = 20, ["serve"], 20

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from apps.accounts.models import User
    from apps.marketdata.models import Candle

    call_command("migrate", verbosity=0)
    print(f"{os.cpu_count()} CPUs; load before: {load_average()}")
    market_id, stored = store_candles()
    users = create_users(args.users)
    vacuum()
    connection.close()  # this process's connection is not the server's
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="load-") as tmp_name:
            tmp = Path(tmp_name)
            users_file = tmp / "users.json"
            users_file.write_text(json.dumps(users))
            for kind in args.server:
                label = (
                    "daphne (1 process)"
                    if kind == "daphne"
                    else f"serve/uvicorn ({args.processes} processes)"
                )
                print(f"{label}, {args.users} users, {args.seconds} s per phase")
                process, base = start_server(kind, args.processes, tmp / f"{kind}.log")
                try:
                    warm_up(base, users)
                    if not args.skip_reads:
                        meter = CpuMeter(process)
                        rows = run_locust(base=base, user_class="Reader", rps=args.read_rps, seconds=args.seconds,
                                          users_file=users_file, tmp=tmp, meter=meter)  # fmt: skip
                        results.append(
                            (label, "reads", report("reads", rows, READ_TARGET_P95_MS, args.read_rps))
                        )
                        meter.report(rows)
                        print(f"    load: {load_average()}")
                    if not args.skip_orders:
                        meter = CpuMeter(process)
                        rows = run_locust(base=base, user_class="Trader", rps=args.order_rps,
                                          seconds=args.seconds, users_file=users_file, tmp=tmp, meter=meter)  # fmt: skip
                        results.append(
                            (label, "orders", report("orders", rows, ORDER_TARGET_P95_MS, args.order_rps))
                        )
                        meter.report(rows)
                        print(f"    load: {load_average()}")
                finally:
                    stop_server(process)
    finally:
        User.objects.filter(pk__in=[u["id"] for u in users]).delete()
        if stored:
            Candle.objects.filter(market_id=market_id, timeframe="1m").delete()
        vacuum()
        print(f"load after: {load_average()}")
    print(
        "summary: " + "; ".join(f"{label} {phase} {'PASS' if ok else 'FAIL'}" for label, phase, ok in results)
    )


if __name__ == "__main__":
    main()
