"""Bot replay (forward test) benchmark (PostgreSQL): a year of real 1h candles, per strategy.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading_bots \\
        .venv/bin/python benchmarks/bot_replay.py [--candles 8760]

Stores the last ``--candles`` Binance BTC/USDT 1h candles of the shared data, runs a
replay of one paper bot per strategy (sma_crossover, grid, dca) in this process (as the
worker runs it: the job claim, progress, the paper exchange and the orders service on
PostgreSQL) and prints the wall time, the candles per second, the trades and whether the
trades equal the backtest's. The benchmark uses its own user and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trading_bots")

STRATEGIES = {
    "sma_crossover": {"fast": 20, "slow": 50},
    "grid": {"levels": 12, "range_pct": 0.1},
    "dca": {},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candles", type=int, default=8760)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from apps.accounts.models import User
    from apps.backtests.engine import load_csv
    from apps.backtests.services.runner import strategy_run
    from apps.backtests.strategies.registry import get_strategy_class
    from apps.bots import services
    from apps.bots.models import Bot, BotReplay
    from apps.marketdata.models import Market
    from apps.marketdata.services import candles_import_arrays

    call_command("migrate", verbosity=0)
    data_dir = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))
    candles = load_csv(data_dir / "ohlcv" / "binance_BTCUSDT_1h.csv.gz")
    candles = candles.slice(len(candles) - args.candles, len(candles))
    ohlcv = np.column_stack([candles.open, candles.high, candles.low, candles.close, candles.volume])
    candles_import_arrays(
        exchange="binance", symbol="BTC/USDT", timeframe="1h", ts=candles.timestamp, ohlcv=ohlcv
    )
    # As in the agreement tests: without lot and tick sizes (the engine has none) the trades
    # must be the backtest's; with them the bot rounds every amount down to the lot.
    Market.objects.filter(exchange__slug="binance", symbol="BTC/USDT").update(
        precision_amount=None, precision_price=None
    )
    start = datetime.fromtimestamp(int(candles.timestamp[0]) / 1000, tz=UTC)
    end = datetime.fromtimestamp(int(candles.timestamp[-1]) / 1000, tz=UTC)
    print(
        f"{len(candles)} BTC/USDT 1h candles, {start:%Y-%m-%d} .. {end:%Y-%m-%d}; DB {settings.DATABASES['default']['NAME']}"
    )

    user = User.objects.create_user(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password="x")
    try:
        for name, params in STRATEGIES.items():
            bot = Bot.objects.create(
                owner=user,
                name=f"replay bench {name}",
                strategy=name,
                params=get_strategy_class(name).validate(params),
                exchange="binance",
                symbol="BTC/USDT",
                timeframe="1h",
                allocated_capital=Decimal("10000"),
            )
            replay = services.bot_replay_create(bot=bot, start=start, end=end, enqueue=False)
            started = time.perf_counter()
            status = services.bot_replay_execute(replay_id=replay.pk, worker="bench")
            wall = time.perf_counter() - started
            replay = BotReplay.objects.get(pk=replay.pk)
            if status != "completed":
                print(f"{name}: {status} {replay.error}")
                continue
            backtest = strategy_run(
                kind="builtin", name=name, params=bot.params, candles=candles, config=replay.result["config"]
            )
            mine = [(t["entry_time"], t["exit_time"]) for t in replay.result["trades"]]
            theirs = [(t["entry_time"], t["exit_time"]) for t in backtest.trades_as_records()]
            end_equity = replay.result["equity"]["end"]
            print(
                f"{name:14s} {wall:7.2f} s wall ({replay.result['seconds']:.2f} s in the loop), "
                f"{len(candles) / wall:8.0f} candles/s, {len(mine)} trades, "
                f"same trade times as the backtest: {mine == theirs}, end equity {end_equity:.6f} "
                f"vs {backtest.metrics['end_equity']:.6f}"
            )
    finally:
        user.delete()


if __name__ == "__main__":
    main()
