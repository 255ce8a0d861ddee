"""Paper exchange benchmark (PostgreSQL): order placement latency and the matching pass.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading_exchanges \
        .venv/bin/python benchmarks/exchanges_paper.py

Measures, on real Binance BTC/USDT 1h candles replayed through ``ReplayPriceSource``:
* market order round trip (lock account, reserve, fill, trade row): ms per order;
* limit order placement: ms per order;
* the matching pass: N resting limit orders evaluated over M newly closed candles.
The database in DATABASE_URL is migrated if needed; the benchmark uses its own user and
deletes it afterwards. The machine is shared, so timings are noisy: the median of runs is printed.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trading_exchanges")


def ensure_database() -> None:
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
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{config["NAME"]}"')


def main() -> None:
    ensure_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from apps.accounts.models import User
    from apps.backtests.engine import load_csv
    from apps.exchanges import services
    from apps.exchanges.gateway import OrderRequest
    from apps.exchanges.gateway.paper import PaperGateway
    from apps.exchanges.gateway.prices import ReplayPriceSource

    call_command("migrate", verbosity=0)
    data = load_csv(Path(settings.SHARED_DATA_DIR) / "ohlcv" / "binance_BTCUSDT_1h.csv.gz").slice(
        35_000, 37_000
    )
    user = User.objects.create_user(
        email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password=uuid.uuid4().hex
    )
    try:
        account = services.paper_account_get_or_create(user=user)
        account.max_volume_fraction = None
        account.save()
        services.paper_account_set_balances(account=account, balances={"USDT": "100000000"})
        replay = ReplayPriceSource({"BTC/USDT": data}, cursor=10)
        gateway = PaperGateway(account, prices=replay, markets={})

        n = 200
        started = time.perf_counter()
        for _ in range(n):
            gateway.create_order(OrderRequest("BTC/USDT", "buy", "market", Decimal("0.01")))
        market_ms = (time.perf_counter() - started) / n * 1000

        started = time.perf_counter()
        price0 = float(data.open[10])
        for i in range(n):
            level = Decimal(repr(round(price0 * (0.80 + 0.2 * i / n), 2)))
            gateway.create_order(OrderRequest("BTC/USDT", "buy", "limit", Decimal("0.01"), price=level))
        limit_ms = (time.perf_counter() - started) / n * 1000

        passes = []
        for candles in (1, 10, 100):
            replay.cursor += candles
            started = time.perf_counter()
            fills = gateway.process("BTC/USDT")
            passes.append((candles, time.perf_counter() - started, fills))
        open_left = len(gateway.fetch_open_orders("BTC/USDT"))
    finally:
        user.delete()

    print("paper exchange benchmark (PostgreSQL, shared 2-core machine: timings are noisy)")
    print(f"  market order create+fill : {market_ms:7.2f} ms/order  ({n} orders)")
    print(f"  limit order placement    : {limit_ms:7.2f} ms/order  ({n} orders)")
    for candles, seconds, fills in passes:
        print(
            f"  matching pass            : {seconds * 1000:7.1f} ms for <= {n} resting orders x {candles} candles ({fills} fills)"
        )
    print(f"  resting orders left      : {open_left}")


if __name__ == "__main__":
    main()
