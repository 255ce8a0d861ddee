"""Realtime benchmark (PostgreSQL + Redis): one price event to 1,000 WebSocket clients on the web server
with channels-redis, and the home page's calls for a user with a year of history.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading_bench_realtime \
    REDIS_URL=redis://127.0.0.1:6379/8 \
        .venv/bin/python benchmarks/realtime.py [--clients 1000] [--events 20] [--processes 2]
                                                [--trades 10000] [--calls 40]
    ... benchmarks/realtime.py --quick          # 200 clients, 5 events, 2,000 trades, 15 calls

**Fan-out.** ``--clients`` users (one socket each, JWT) connect to one web server process
(``manage.py serve``: uvicorn, ``config.asgi``, channels-redis; ``--server daphne`` to compare)
from ``--processes`` client processes (asyncio and ``websockets``; the script raises its open-file limit to what it needs). Then
``--events`` times, one second apart, this process publishes one ``price`` event to
everybody (``publish_event(None, "price", ...)``, the broadcast group) carrying its send
time; each client notes when it reads it. Printed: the delivery latency over every
(client, event) pair, p50/p95/p99/max (target: p99 under 250 ms), the time until the last
client of an event had it, any event a client never got, and the CPU per delivery of the
server and of the clients. The clients run on the same two cores as the server: their own
read time is in the figures (their objects are kept out of garbage collection, whose full
passes over 500 sockets stalled every socket of a client process at once).

**Home page.** A user seeded as ``benchmarks/portfolio.py`` does (a year of tiered
snapshots, ``--trades`` round trips over 5 bots, here running so the page shows them)
calls, over real HTTP through the same server, what the home page does: the page itself
(``/``, rendered from ``apps.home.selectors.home_page``), the portfolio summary and the
30-day and one-year equity curves (``static/home/home.js``, the portfolio page), and a
bot's detail and performance (``static/bots/bots.js``). ``--calls`` calls each, after
one warm-up call reported apart: p50/p95/max (target: p95 under 100 ms).

Everything the script creates (users, their rows) is deleted afterwards; the load
average is printed next to the figures (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import multiprocessing
import os
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trading_bench_realtime")
os.environ["MARKETDATA_ONLINE"] = "false"


def raise_open_files(needed: int) -> int:
    """Lift the soft open-file limit towards ``needed`` (never above the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, min(hard, needed)) if hard != resource.RLIM_INFINITY else max(soft, needed)
    if target != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------ fan-out
def client_process(ws_base: str, tokens: list[str], conn) -> None:
    """One client process: connect every token's socket, then note each bench price's arrival."""
    import websockets

    raise_open_files(len(tokens) + 256)

    async def run() -> None:
        received: list[tuple[int, float]] = []  # (event number, latency s)

        async def open_one(token: str):
            ws = await websockets.connect(
                f"{ws_base}/ws/events/?token={token}",
                origin="http://127.0.0.1",
                open_timeout=60,
                ping_interval=None,
                max_queue=None,
            )
            first = json.loads(await ws.recv())
            assert first["type"] == "connected", first
            return ws

        sockets = []
        for start in range(0, len(tokens), 50):  # in small waves, as browsers would arrive
            sockets += await asyncio.gather(*(open_one(t) for t in tokens[start : start + 50]))

        async def read(ws) -> None:
            try:
                async for raw in ws:
                    now = time.time()
                    event = json.loads(raw)
                    payload = event.get("payload") or {}
                    if event.get("type") == "price" and "bench" in payload:
                        received.append((payload["bench"], now - payload["sent"]))
            except websockets.exceptions.ConnectionClosed:
                pass

        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        # The measuring clients' own garbage collection (a full pass over 500 sockets' objects)
        # would stall every socket of this process at once: their objects are kept out of it.
        gc.collect()
        gc.freeze()
        conn.send(("ready", len(sockets)))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers, return_exceptions=True)
        conn.send(("done", received))

    asyncio.run(run())


def bench_fanout(base: str, users, *, processes: int, events: int) -> bool:
    from rest_framework_simplejwt.tokens import AccessToken

    from apps.core.events import publish_event

    tokens = [str(AccessToken.for_user(user)) for user in users]
    ws_base = base.replace("http://", "ws://")
    context = multiprocessing.get_context("spawn")
    children = []
    began = time.perf_counter()
    for i in range(processes):
        parent_end, child_end = context.Pipe()
        process = context.Process(target=client_process, args=(ws_base, tokens[i::processes], child_end))
        process.start()
        children.append((process, parent_end))
    connected = sum(conn.recv()[1] for _process, conn in children)
    print(
        f"{connected} WebSocket clients connected in {time.perf_counter() - began:.1f} s ({processes} processes)"
    )
    time.sleep(1)
    from tests.support.servers import children_of, cpu_seconds

    server_pids = [pid for pid in children_of(os.getpid()) if pid not in {p.pid for p, _ in children}]
    client_pids = [process.pid for process, _conn in children]
    cpu_before = cpu_seconds(server_pids), cpu_seconds(client_pids)
    for n in range(events):
        publish_event(
            None, "price", {"bench": n, "sent": time.time(), "symbol": "BTC/USDT", "last": "100000"}
        )
        time.sleep(1)
    time.sleep(1)
    server_cpu = cpu_seconds(server_pids) - cpu_before[0]
    client_cpu = cpu_seconds(client_pids) - cpu_before[1]
    received: list[tuple[int, float]] = []
    for _process, conn in children:
        conn.send("stop")
    for process, conn in children:
        received += conn.recv()[1]
        process.join(30)
    ms = [latency * 1000 for _n, latency in received]
    per_event = [
        max(latency for n, latency in received if n == e) * 1000 for e in sorted({n for n, _ in received})
    ]
    missing = connected * events - len(received)
    p99 = pct(ms, 0.99)
    print(
        f"price event -> client, {len(ms)} deliveries ({events} events x {connected} clients): "
        f"p50 {pct(ms, 0.5):.0f} ms, p95 {pct(ms, 0.95):.0f} ms, p99 {p99:.0f} ms, max {max(ms):.0f} ms "
        f"(target p99 < 250 ms: {'OK' if p99 < 250 else 'OVER'})"
    )
    print(
        f"until the last client had it, per event: median {statistics.median(per_event):.0f} ms, "
        f"max {max(per_event):.0f} ms; missed deliveries: {missing}"
    )
    deliveries = max(1, connected * events)
    print(
        f"CPU per delivery: server {server_cpu / deliveries * 1e6:.0f} us, "
        f"clients {client_cpu / deliveries * 1e6:.0f} us (the server's per event: {server_cpu / events * 1000:.0f} ms)"
    )
    print("until the last client had it, event by event (ms): " + " ".join(f"{m:.0f}" for m in per_event))
    print(f"load average: {load()}")
    return p99 < 250 and missing == 0


# ------------------------------------------------------------------ home page
def bench_home(base: str, user, *, calls: int) -> bool:
    from django.test import Client
    from rest_framework_simplejwt.tokens import AccessToken

    from apps.bots.models import Bot

    bot = Bot.objects.filter(owner=user).order_by("id").first()
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    bearer = f"Bearer {AccessToken.for_user(user)}"
    calls_made = [
        ("/ (home page)", "/", {"Cookie": cookie, "Accept": "text/html"}),
        ("portfolio summary", "/api/v1/portfolio/summary/", {"Authorization": bearer}),
        ("equity curve 30 d", "/api/v1/portfolio/equity-curve/?days=30", {"Authorization": bearer}),
        ("equity curve 365 d", "/api/v1/portfolio/equity-curve/?days=365", {"Authorization": bearer}),
        ("bot detail", f"/api/v1/bots/{bot.pk}/", {"Authorization": bearer}),
        ("bot performance", f"/api/v1/bots/{bot.pk}/performance/", {"Authorization": bearer}),
    ]
    split = urlsplit(base)
    connection = http.client.HTTPConnection(split.hostname, split.port, timeout=60)
    worst = 0.0
    print(
        f"{'home page call':24} {'first':>8} {'p50':>8} {'p95':>8} {'max':>8}  (ms, {calls} calls, HTTP to the server)"
    )
    for label, path, headers in calls_made:
        times = []
        for _ in range(calls + 1):
            started = time.perf_counter()
            connection.request("GET", path, headers={"Accept": "application/json", **headers})
            response = connection.getresponse()
            body = response.read()
            times.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise SystemExit(f"{path}: {response.status} {body[:300]!r}")
        first, rest = times[0], times[1:]
        p95 = pct(rest, 0.95)
        worst = max(worst, p95)
        print(f"{label:24} {first:8.1f} {statistics.median(rest):8.1f} {p95:8.1f} {max(rest):8.1f}")
    connection.close()
    print(
        f"worst p95: {worst:.1f} ms (target < 100 ms: {'OK' if worst < 100 else 'OVER'}); load average: {load()}"
    )
    return worst < 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--trades", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument(
        "--server", choices=["serve", "daphne"], default="serve", help="manage.py serve (uvicorn) or daphne"
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.events, args.trades, args.calls = 200, 5, 2_000, 15
    # The server (a child) inherits the limit: one descriptor per socket on each side, plus room.
    limit = raise_open_files(2 * args.clients + 512)
    if limit < args.clients + 256:
        sys.exit(f"open-file limit {limit} is too low for {args.clients} clients (raise the hard limit)")

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from apps.bots.models import Bot
    from benchmarks.portfolio import seed
    from tests.support.servers import asgi_server

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
        sys.exit("this benchmark needs DATABASE_URL pointing at PostgreSQL and REDIS_URL")
    call_command("migrate", verbosity=0)
    print(f"load average before: {load()}")
    user_model = get_user_model()
    run = uuid.uuid4().hex[:8]
    users = user_model.objects.bulk_create(
        user_model(email=f"bench-rt-{run}-{i}@example.com", password="!") for i in range(args.clients)
    )
    began = time.perf_counter()
    home_user, points = seed(args.trades)
    Bot.objects.filter(owner=home_user).update(status=Bot.Status.RUNNING)
    with connection.cursor() as cursor:  # fresh statistics, as autovacuum keeps them in a live database
        cursor.execute("ANALYZE")
    print(
        f"seeded {args.clients} users, and one with {points} snapshots per table and {args.trades} trades "
        f"in {time.perf_counter() - began:.1f} s"
    )
    ok = True
    try:
        log_path = (
            ROOT / "var" / "log" / f"benchmark-realtime-{args.server}.log"
        )  # kept: read it if a figure is odd
        log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"server log: {log_path.relative_to(ROOT)}")
        with asgi_server(log_path=log_path, server=args.server) as base:
            ok &= bench_fanout(base, users, processes=args.processes, events=args.events)
            ok &= bench_home(base, home_user, calls=args.calls)
    finally:
        user_model.objects.filter(email__startswith=f"bench-rt-{run}-").delete()
        home_user.delete()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
