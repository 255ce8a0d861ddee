"""Bots benchmark (PostgreSQL + Redis): N paper bots on 1m candles ticked by real Celery workers,
and a manual paper market order end to end (API POST to the fill event at a WebSocket client).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading_bench_bots \
    REDIS_URL=redis://127.0.0.1:6379/7 \
        .venv/bin/python benchmarks/bots.py [--bots 500] [--workers 2] [--concurrency 4]
                                            [--minutes 3] [--orders 200]
    ... benchmarks/bots.py --quick          # 50 bots, 1 minute, 40 orders
    ... benchmarks/bots.py --user-strategy --bots 40 --minutes 3 --skip-orders

Offline (``MARKETDATA_ONLINE=false``, set here) the bots tick on the replay feed
over real Binance BTC/USDT 1m candles from ``SHARED_DATA_DIR`` played at wall
speed, so a replayed candle closes at every wall-clock minute, exactly like a
live 1m candle; the paper exchange fills their orders at the same feed's price.
Bots: ``sma_crossover`` with fast/slow spread over 2..10 / 3..30, so on each
candle some of them trade (a market order, filled at once by the paper exchange).

Per minute it prints: ticks sent (the beat job's ``bots_enqueue_due``, called by
this script right at the candle close; the production beat runs every 5 s, so add
up to 5 s), ticks done, orders placed, the time from the candle close to the last
tick done (must be under 60 s), tick run time p50/p95 and close-to-done p50/p95,
ticks per second per worker (ticks / that worker's busy span) and CPU per tick
(the worker processes' user+system CPU over the minute, their sandbox processes'
included, / ticks). Tick times come
from the workers' own "Task ... succeeded in" log lines.

``--user-strategy``: the bots run the same crossover written as a user strategy, so
every tick asks the bot's sandbox session (``apps/bots/services/user_code.py``).
First, in this process, it measures a sandbox session: its start cost (a fresh
interpreter importing numpy and pandas, locked down, the code loaded) p50/p95 over
``--sessions`` starts, its memory (PSS), and one tick's step (the signals of a
60-candle window) p50/p95. Then the minutes on the workers, each keeping up to
``--pool-size`` sessions (default: every bot, so only the first minute pays the
starts; a smaller pool shows what eviction costs).

Then ``--orders`` sequential manual paper market orders through the web server (``manage.py serve``): the time
from sending the POST to receiving ``fill.created`` on the user's WebSocket,
p50/p95/max (target: p95 under 100 ms).

The database in DATABASE_URL is created and migrated if needed. The benchmark's
user (with its bots, paper accounts and orders) is deleted afterwards, and so are
the candles it stored. The machine is shared: the load average is printed next to
the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trading_bench_bots")
# Offline, at wall speed: the replay feed closes a stored 1m candle at every wall-clock minute.
os.environ["MARKETDATA_ONLINE"] = "false"
os.environ["MARKETDATA_REPLAY_SPEED"] = "1"

TICK_TASK = "apps.bots.tasks.bot_tick"
# Celery's "Task ... succeeded in" line, under the project's log format (asctime first).
SUCCEEDED = re.compile(
    r"^\[?(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}).*Task apps\.bots\.tasks\.bot_tick\[[^\]]+\] "
    r"succeeded in (?P<took>[0-9.]+)s"
)


def ensure_database() -> None:
    import environ
    import psycopg

    config = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    if config["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("this benchmark needs DATABASE_URL pointing at PostgreSQL")
    if not os.environ.get("REDIS_URL"):
        sys.exit("this benchmark needs REDIS_URL (the Celery broker and the channel layer)")
    conninfo = {
        "host": config.get("HOST") or "127.0.0.1",
        "port": config.get("PORT") or 5432,
        "user": config.get("USER") or "postgres",
        "dbname": "postgres",
    }
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{config["NAME"]}"')


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads, and of its children: the ones it waited
    for and the live ones (a worker's sandbox sessions) (Linux /proc)."""

    def stat(path: Path) -> list[str]:
        return path.read_text().rsplit(")", 1)[1].split()

    fields = stat(Path(f"/proc/{pid}/stat"))
    ticks = sum(int(fields[k]) for k in (11, 12, 13, 14))
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            child = stat(path)
        except OSError:
            continue  # gone meanwhile
        if int(child[1]) == pid:
            ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def tick_lines(log: Path, offset: int) -> tuple[list[tuple[float, float]], int]:
    """(finished at, run seconds) of each bot tick logged after ``offset``; the new offset."""
    with log.open() as handle:
        handle.seek(offset)
        text = handle.read()
        offset = handle.tell()
    out = []
    for line in text.splitlines():
        match = SUCCEEDED.match(line)
        if match:
            at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time
            out.append((at, float(match["took"])))
    return out, offset


# ``sma_crossover``'s rule, written as a user would (numpy only).
USER_SMA = """
import numpy as np


class BenchCross(SignalStrategy):
    name = "bench_cross"
    params = {"fast": Param("int", 5, min=2), "slow": Param("int", 20, min=3)}

    def signals(self, data):
        close = data.close
        fast = np.convolve(close, np.ones(self.p.fast) / self.p.fast)[: len(close)]
        slow = np.convolve(close, np.ones(self.p.slow) / self.p.slow)[: len(close)]
        above = fast > slow
        above[: self.p.slow] = False
        prev = np.concatenate(([False], above[:-1]))
        return Signals(long_entries=above & ~prev, long_exits=~above & prev)
"""


def setup_bots(*, user, count: int, user_strategy: bool = False):
    from apps.bots.models import Bot
    from apps.bots.services import bot_create
    from apps.bots.services.accounts import bot_paper_account

    started = time.perf_counter()
    ids = []
    strategy: dict = {}
    if user_strategy:
        from apps.backtests.services import strategy_create

        strategy["strategy_id"] = strategy_create(user=user, source=USER_SMA).pk
    else:
        strategy["strategy"] = "sma_crossover"
    for i in range(count):
        fast = 2 + i % 9
        slow = fast + 1 + (i * 7) % 20
        bot = bot_create(
            user=user,
            name=f"bench {i}",
            exchange="binance",
            symbol="BTC/USDT",
            timeframe="1m",
            params={"fast": fast, "slow": slow},
            warmup=60,
            **strategy,
        )
        bot_paper_account(bot=bot)  # created up front: the first tick is not the account's setup
        ids.append(bot.pk)
    # Straight to running: the lifecycle (start -> activate) is not what is measured here.
    Bot.objects.filter(pk__in=ids).update(status=Bot.Status.RUNNING)
    print(f"  created {count} running paper bots in {time.perf_counter() - started:.1f} s")
    return ids


def store_candles() -> tuple[int, bool]:
    """Real 1m BTC/USDT candles for the replay feed; (market id, whether this run stored them)."""
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
    ohlcv = [data.open, data.high, data.low, data.close, data.volume]
    import numpy as np

    candles_import_arrays(
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1m",
        ts=np.asarray(data.timestamp, dtype=np.int64),
        ohlcv=np.ascontiguousarray(np.column_stack(ohlcv)),
    )
    cache.delete(f"marketdata:replay:{market.id}")
    return market.id, True


def run_minutes(*, workers, logs, bot_ids, minutes: int) -> None:
    from apps.bots import services
    from apps.orders.models import Order

    offsets = {log: log.stat().st_size for log in logs}
    worst = 0.0
    for minute in range(minutes):
        close = (time.time() // 60 + 1) * 60
        time.sleep(max(0.0, close - time.time()) + 0.05)
        cpu_before = [cpu_seconds(w.pid) for w in workers]
        orders_before = Order.objects.filter(bot_id__in=bot_ids).count()
        t0 = time.time()
        sent = services.bots_enqueue_due()
        enqueue_s = time.time() - t0
        per_worker: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(workers))}
        done = 0
        while done < sent and time.time() < close + 59.5:
            time.sleep(0.25)
            for i, log in enumerate(logs):
                lines, offsets[log] = tick_lines(log, offsets[log])
                per_worker[i] += lines
            done = sum(len(v) for v in per_worker.values())
        cpu = sum(cpu_seconds(w.pid) for w in workers) - sum(cpu_before)
        ticks = [t for v in per_worker.values() for t in v]
        run = [took for _at, took in ticks]
        since_close = [at - close for at, _took in ticks]
        last = max(since_close, default=float("nan"))
        worst = max(worst, last)
        orders = Order.objects.filter(bot_id__in=bot_ids).count() - orders_before
        rates = []
        for v in per_worker.values():
            if v:
                span = max(at for at, _ in v) - min(at - took for at, took in v)
                rates.append(f"{len(v) / span:.1f}" if span > 0 else "-")
        print(
            f"  minute {minute + 1}: sent {sent} (enqueue {enqueue_s * 1000:.0f} ms), done {done}, "
            f"orders {orders}; close -> last tick done {last:.1f} s "
            f"({'inside' if done == sent and last < 60 else 'NOT inside'} the minute)"
        )
        print(
            f"    tick run time p50 {pct(run, 0.5) * 1000:.0f} ms, p95 {pct(run, 0.95) * 1000:.0f} ms; "
            f"close -> done p50 {pct(since_close, 0.5):.1f} s, p95 {pct(since_close, 0.95):.1f} s; "
            f"ticks/s per worker {', '.join(rates)}; CPU per tick {cpu / max(done, 1) * 1000:.0f} ms"
        )
    print(f"  worst close -> last tick done: {worst:.1f} s")


def pss_mb(pid: int) -> float:
    """Proportional set size of a process (its share of shared pages counted once), MB."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return int(text.split("\nPss:")[1].split()[0]) / 1024


def run_sandbox_sessions(*, count: int) -> None:
    """Start cost, memory and step cost of a bot's sandbox session, measured in this process."""
    import numpy as np

    from apps.backtests.engine import Candles
    from apps.backtests.strategies.sandbox.session import SandboxSession
    from apps.bots.services.user_code import sandbox_limits

    limits = sandbox_limits()
    starts, memory = [], []
    for _ in range(count):
        session = SandboxSession(USER_SMA, {"fast": 5, "slow": 20}, limits=limits)
        starts.append(session.start_seconds)
        memory.append(pss_mb(session.proc.pid))
        session.close()
    close = 100.0 + np.cumsum(np.random.default_rng(1).normal(0, 1, 260))
    data = Candles.from_arrays(
        np.arange(260, dtype=np.int64) * 60_000, close, close, close, close, np.ones(260)
    )
    session = SandboxSession(USER_SMA, {"fast": 5, "slow": 20}, limits=limits)
    steps = []
    try:
        for end in range(61, 261):
            started = time.perf_counter()
            session.signals(data.slice(end - 60, end))
            steps.append(time.perf_counter() - started)
    finally:
        session.close()
    print(
        f"  session start p50 {pct(starts, 0.5) * 1000:.0f} ms, p95 {pct(starts, 0.95) * 1000:.0f} ms "
        f"({count} starts); memory (PSS) {statistics.mean(memory):.0f} MB per session; "
        f"one step (60 candles) p50 {pct(steps, 0.5) * 1000:.2f} ms, p95 {pct(steps, 0.95) * 1000:.2f} ms"
    )


def run_manual_orders(*, user, count: int) -> None:
    import requests
    import websockets
    from rest_framework_simplejwt.tokens import AccessToken

    from apps.exchanges import services as exchange_services
    from tests.support.servers import asgi_server

    account = exchange_services.paper_account_get_or_create(user=user)
    account.max_volume_fraction = None
    account.save()
    exchange_services.paper_account_set_balances(account=account, balances={"USDT": "100000000"})
    token = str(AccessToken.for_user(user))
    with tempfile.TemporaryDirectory() as tmp, asgi_server(log_path=Path(tmp) / "server.log") as base:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        body = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.001"}

        async def scenario() -> list[float]:
            ws_url = base.replace("http://", "ws://") + "/ws/events/?token=" + token
            async with websockets.connect(ws_url, origin="http://127.0.0.1") as ws:
                while json.loads(await ws.recv())["type"] != "connected":
                    pass
                latencies = []
                for i in range(count + 3):  # the first few warm the server up
                    started = time.perf_counter()
                    response = await asyncio.to_thread(session.post, base + "/api/v1/orders/", json=body)
                    if response.status_code != 201:
                        raise SystemExit(f"order {i}: {response.status_code} {response.text}")
                    order_id = response.json()["id"]
                    while True:
                        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        if event["type"] == "fill.created" and event["payload"].get("order_id") == order_id:
                            break
                    if i >= 3:
                        latencies.append(time.perf_counter() - started)
                return latencies

        latencies = asyncio.run(scenario())
    ms = [x * 1000 for x in latencies]
    print(
        f"  {len(ms)} market orders, POST -> fill.created at the WebSocket: p50 {pct(ms, 0.5):.0f} ms, "
        f"p95 {pct(ms, 0.95):.0f} ms, max {max(ms):.0f} ms, mean {statistics.mean(ms):.0f} ms "
        f"({'under' if pct(ms, 0.95) < 100 else 'OVER'} the 100 ms target)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker")
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="50 bots, 1 minute, 40 orders")
    parser.add_argument("--skip-bots", action="store_true")
    parser.add_argument("--skip-orders", action="store_true")
    parser.add_argument(
        "--user-strategy", action="store_true", help="the bots run a user strategy in sandbox sessions"
    )
    parser.add_argument("--sessions", type=int, default=10, help="sandbox starts to time (--user-strategy)")
    parser.add_argument("--pool-size", type=int, help="sandbox sessions per worker (default: --bots)")
    args = parser.parse_args()
    if args.quick:
        args.bots, args.minutes, args.orders = 50, 1, 40
    if args.user_strategy:
        # Read by the workers' settings: by default each keeps every bot's session.
        os.environ["BOT_SANDBOX_POOL_SIZE"] = str(args.pool_size or args.bots)

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    from apps.accounts.models import User
    from apps.bots.models import Bot
    from apps.marketdata.models import Candle
    from tests.support.servers import celery_worker

    call_command("migrate", verbosity=0)
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    user = User.objects.create_user(
        email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password=uuid.uuid4().hex
    )
    # One user runs every bot here: an admin's quota override, as an operator would set it.
    user.max_bots = user.max_running_bots = args.bots + 10
    user.save(update_fields=["max_bots", "max_running_bots"])
    market_id, stored = store_candles()
    try:
        if args.user_strategy:
            print("a bot's sandbox session (user strategy), in this process")
            run_sandbox_sessions(count=args.sessions)
        if not args.skip_bots:
            kind = (
                f"a user strategy, {os.environ['BOT_SANDBOX_POOL_SIZE']} sandbox sessions per worker"
                if args.user_strategy
                else "sma_crossover"
            )
            print(
                f"{args.bots} paper bots on 1m candles ({kind}), "
                f"{args.workers} workers x {args.concurrency} threads"
            )
            bot_ids = setup_bots(user=user, count=args.bots, user_strategy=args.user_strategy)
            with tempfile.TemporaryDirectory() as tmp:
                logs = [Path(tmp) / f"worker{i}.log" for i in range(args.workers)]
                from contextlib import ExitStack

                with ExitStack() as stack:
                    workers = [
                        stack.enter_context(
                            celery_worker(
                                concurrency=args.concurrency,
                                hostname=f"bench-bots{i}",
                                log_path=log,
                                queues="bots",
                            )
                        )
                        for i, log in enumerate(logs)
                    ]
                    run_minutes(workers=workers, logs=logs, bot_ids=bot_ids, minutes=args.minutes)
        if not args.skip_orders:
            print("manual paper market orders through the web server (manage.py serve)")
            run_manual_orders(user=user, count=args.orders)
    finally:
        Bot.objects.filter(owner=user).delete()  # before the user: a bot protects its strategy version
        user.delete()
        if stored:
            Candle.objects.filter(market_id=market_id, timeframe="1m").delete()
        print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
