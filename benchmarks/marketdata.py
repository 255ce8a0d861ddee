"""Market-data benchmark (PostgreSQL): import, bulk read, candles endpoint.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading_marketdata \
        .venv/bin/python benchmarks/marketdata.py

Targets: import 525,600 1m candles (one year) < 15 s; read one year of 1m into
numpy < 1.5 s; ``/api/v1/market-data/candles/`` with 5,000 candles p95 < 150 ms.
It runs in a fresh database ``<DATABASE_URL name>_bench`` (dropped and
re-created each run, so earlier runs' dead rows do not skew the timings).
The machine is shared, so timings are noisy: several runs are taken and the
median/best are printed.
"""

from __future__ import annotations

import gzip
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trading_marketdata")

N_CANDLES = 525_600
ENDPOINT_CANDLES = 5_000
ENDPOINT_REQUESTS = 60


def fresh_database() -> None:
    """Point DATABASE_URL at ``<name>_bench``, dropped and re-created: timings without earlier runs' bloat."""
    import environ
    import psycopg

    config = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    if config["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("this benchmark needs DATABASE_URL pointing at PostgreSQL")
    conninfo = {
        "host": config.get("HOST") or "127.0.0.1",
        "port": config.get("PORT") or 5432,
        "user": config.get("USER") or "postgres",
        "dbname": "postgres",
    }
    if config.get("PASSWORD"):
        conninfo["password"] = config["PASSWORD"]
    name = f"{config['NAME']}_bench"
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    os.environ["DATABASE_URL"] = (
        f"postgres://{conninfo['user']}{password}@{conninfo['host']}:{conninfo['port']}/{name}"
    )


def write_year_file(path: Path) -> None:
    import numpy as np

    from apps.marketdata.management.commands.seed_demo_marketdata import generate_candles

    start_ms = 1_704_067_200_000  # 2024-01-01
    ts, ohlcv = generate_candles("BENCH/USDT", 40_000.0, end_ms=start_ms + N_CANDLES * 60_000, days=365)
    assert len(ts) == N_CANDLES
    lines = ["timestamp,open,high,low,close,volume"]
    body = np.column_stack([ts.astype(np.float64), ohlcv])
    text = "\n".join(lines) + "\n"
    import io

    buffer = io.StringIO()
    np.savetxt(buffer, body, fmt=["%d", "%.2f", "%.2f", "%.2f", "%.2f", "%.5f"], delimiter=",")
    path.write_bytes(gzip.compress((text + buffer.getvalue()).encode(), compresslevel=1))


def main() -> None:
    fresh_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from django.conf import settings
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    from apps.accounts.models import User
    from apps.marketdata import selectors, services
    from apps.marketdata.models import Exchange

    settings.ALLOWED_HOSTS = ["*"]
    Exchange.objects.filter(slug="bench").delete()
    services.market_ensure(exchange="bench", symbol="BENCH/USDT", base="BENCH", quote="USDT")

    print(f"PostgreSQL {settings.DATABASES['default']['NAME']}; shared 2-core machine, timings are noisy")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench_BENCHUSDT_1m.csv.gz"
        write_year_file(path)
        started = time.perf_counter()
        report = services.candles_import_file(
            path=path, exchange="bench", symbol="BENCH/USDT", timeframe="1m"
        )
        import_s = time.perf_counter() - started
        assert report.inserted == N_CANDLES, report
        print(
            f"import   {N_CANDLES:,} 1m candles (csv.gz parse + validate + COPY upsert): {import_s:6.2f} s "
            f"(target < 15 s) {'OK' if import_s < 15 else 'SLOW'}"
        )
        started = time.perf_counter()
        again = services.candles_import_file(path=path, exchange="bench", symbol="BENCH/USDT", timeframe="1m")
        assert again.inserted == 0
        print(f"re-import of the same file (idempotent, 0 inserted): {time.perf_counter() - started:6.2f} s")

    reads = []
    for _ in range(5):
        started = time.perf_counter()
        arrays = selectors.candles(exchange="bench", symbol="BENCH/USDT", timeframe="1m")
        reads.append(time.perf_counter() - started)
    assert len(arrays) == N_CANDLES
    print(
        f"read     one year of 1m into numpy: median {statistics.median(reads):.3f} s, best {min(reads):.3f} s "
        f"(target < 1.5 s) {'OK' if statistics.median(reads) < 1.5 else 'SLOW'}"
    )
    frames = []
    for _ in range(3):
        started = time.perf_counter()
        selectors.candles(exchange="bench", symbol="BENCH/USDT", timeframe="1m").to_frame()
        frames.append(time.perf_counter() - started)
    print(f"read     same, as a pandas DataFrame: median {statistics.median(frames):.3f} s")
    started = time.perf_counter()
    hourly = selectors.candles(exchange="bench", symbol="BENCH/USDT", timeframe="1h")
    print(f"resample one year 1m -> 1h ({len(hourly):,} candles): {time.perf_counter() - started:.3f} s")

    user, _ = User.objects.get_or_create(email="bench@example.com")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    params = {"exchange": "bench", "symbol": "BENCH/USDT", "timeframe": "1m", "limit": ENDPOINT_CANDLES}
    times = []
    for i in range(ENDPOINT_REQUESTS + 5):
        started = time.perf_counter()
        response = client.get("/api/v1/market-data/candles/", params)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200 and response.json()["count"] == ENDPOINT_CANDLES, response.content[
            :200
        ]
        if i >= 5:  # warm-up
            times.append(elapsed)
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    print(
        f"endpoint /candles/ {ENDPOINT_CANDLES:,} candles x{ENDPOINT_REQUESTS} (JWT, full Django stack, in-process): "
        f"p50 {statistics.median(times) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms (target < 150 ms) "
        f"{'OK' if p95 < 0.150 else 'SLOW'}"
    )
    Exchange.objects.filter(slug="bench").delete()
    user.delete()
    from django.db import connections

    connections.close_all()
    import environ
    import psycopg

    bench = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    with psycopg.connect(host=bench["HOST"] or "127.0.0.1", port=bench["PORT"] or 5432,
                         user=bench["USER"] or "postgres", dbname="postgres", autocommit=True) as conn:  # fmt: skip
        conn.execute(f'DROP DATABASE IF EXISTS "{bench["NAME"]}"')


if __name__ == "__main__":
    main()
