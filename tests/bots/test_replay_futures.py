"""Futures bots forward in time: a replay of a futures strategy equals its futures backtest.

The bot trades the USD-M perpetual ``BTC/USDT:USDT`` on real BTC/USDT hourly candles:
leverage and margin mode from its config, shorts and reversals (``sma_crossover`` is
always in the market on futures: a cross down closes the long and opens a short in one
order), the paper exchange's fees, slippage and funding (a constant rate charged every
8 hours), and liquidations, all by the engine's rules. The backtest goes through the
backtest service's runner with the config the replay reports.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import numpy as np
import pytest

from apps.backtests.engine.io import load_csv
from apps.backtests.models import StrategyKind
from apps.backtests.services.runner import load_candles, strategy_run
from apps.backtests.strategies import registry
from apps.bots import services
from apps.bots.models import BotReplay
from apps.bots.services.accounts import bot_paper_account
from apps.core.jobs import JobStatus
from apps.exchanges.models import PaperAccount
from apps.marketdata.models import Market
from apps.marketdata.services import candles_import_arrays
from tests.bots.test_replay_agreement import REL, _when
from tests.factories import BotFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_decimals]

EXCHANGE, SYMBOL = "binanceusdm", "BTC/USDT:USDT"
CANDLES = 300
FUNDING = Decimal("0.0001")


@pytest.fixture
def perp_candles(shared_data_dir):
    """The last ``CANDLES`` real BTC/USDT 1h candles, stored as the perpetual's."""
    candles = load_csv(shared_data_dir / "ohlcv" / "binance_BTCUSDT_1h.csv.gz")
    candles = candles.slice(len(candles) - CANDLES, len(candles))
    ohlcv = np.column_stack([candles.open, candles.high, candles.low, candles.close, candles.volume])
    candles_import_arrays(exchange=EXCHANGE, symbol=SYMBOL, timeframe="1h", ts=candles.timestamp, ohlcv=ohlcv)
    # No lot or tick sizes: the engine has none (as in test_replay_agreement).
    Market.objects.filter(symbol=SYMBOL).update(precision_amount=None, precision_price=None)
    return candles


def futures_replay_and_backtest(user, candles, *, params: dict, leverage: str, margin_mode: str, **fields):
    bot = BotFactory(
        owner=user,
        strategy="sma_crossover",
        params=registry.get_strategy_class("sma_crossover").validate(params),
        exchange=EXCHANGE,
        symbol=SYMBOL,
        timeframe="1h",
        allocated_capital=Decimal("10000"),
        leverage=Decimal(leverage),
        margin_mode=margin_mode,
        **fields,
    )
    # The bot's paper account sets the replay's fees and funding: a constant rate here.
    account = bot_paper_account(bot=bot)
    assert account.market_type == PaperAccount.MarketType.FUTURES
    PaperAccount.objects.filter(pk=account.pk).update(funding_rate=FUNDING)
    start, end = _when(candles.timestamp[0]), _when(candles.timestamp[-1])
    replay = services.bot_replay_create(bot=bot, start=start, end=end, enqueue=False)
    status = services.bot_replay_execute(replay_id=replay.pk)
    replay = BotReplay.objects.get(pk=replay.pk)
    assert status == JobStatus.COMPLETED, replay.error
    config = replay.result["config"]
    assert config["market_type"] == "futures" and config["allow_short"] is True
    assert config["funding_rates"] == float(FUNDING) and config["leverage"] == float(leverage)
    backtest = strategy_run(
        kind=StrategyKind.BUILTIN,
        name="sma_crossover",
        params=bot.params,
        candles=load_candles(
            exchange=EXCHANGE, symbol=SYMBOL, timeframe="1h", start=start, end=int(candles.timestamp[-1]) + 1
        ),
        config=config,
    )
    return replay, backtest


def assert_same_futures_trades(replay: BotReplay, backtest) -> None:
    expected = backtest.trades_as_records()
    got = replay.result["trades"]
    assert [(t["entry_time"], t["exit_time"], t["side"]) for t in got] == [
        (t["entry_time"], t["exit_time"], t["side"]) for t in expected
    ]
    for k, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        print(
            k, mine["size"], theirs["size"], mine["funding"], theirs["funding"], mine["fees"], theirs["fees"]
        )
    for mine, theirs in zip(got, expected, strict=True):
        assert mine["exit_reason"] == theirs["exit_reason"], (mine, theirs)
        for field in ("size", "entry_price", "exit_price", "fees", "pnl"):
            assert mine[field] == pytest.approx(theirs[field], rel=REL), (field, mine, theirs)
        assert mine["funding"] == pytest.approx(theirs["funding"], rel=REL, abs=1e-9), (mine, theirs)
    assert replay.result["equity"]["end"] == pytest.approx(backtest.metrics["end_equity"], rel=REL)


def test_futures_signal_replay_shorts_and_equals_its_backtest(user, perp_candles):
    replay, backtest = futures_replay_and_backtest(
        user, perp_candles, params={"fast": 5, "slow": 20}, leverage="3", margin_mode="isolated"
    )
    trades = replay.result["trades"]
    assert {"long", "short"} <= {t["side"] for t in trades}
    # Reversals: a trade ends on the candle the next one (the other way) starts.
    assert any(a["exit_time"] == b["entry_time"] for a, b in pairwise(trades))
    assert any(t["funding"] != 0 for t in trades)
    assert len(trades) >= 5
    assert_same_futures_trades(replay, backtest)


def test_futures_replay_in_cross_margin_equals_its_backtest(user, perp_candles):
    replay, backtest = futures_replay_and_backtest(
        user, perp_candles, params={"fast": 8, "slow": 30}, leverage="5", margin_mode="cross"
    )
    assert len(replay.result["trades"]) >= 3
    assert_same_futures_trades(replay, backtest)


def test_futures_replay_liquidates_as_its_backtest(user, perp_candles):
    """At 50x a 2% move against the position liquidates it: both lose the margin, alike.

    A fifth of the equity per position: trading goes on after a liquidation, and the
    position stays inside the first brackets, where 50x is allowed."""
    replay, backtest = futures_replay_and_backtest(
        user,
        perp_candles,
        params={"fast": 5, "slow": 20},
        leverage="50",
        margin_mode="isolated",
        sizing={"type": "percent_equity", "value": 0.2},
    )
    reasons = [t["exit_reason"] for t in backtest.trades_as_records()]
    assert "liquidation" in reasons
    assert_same_futures_trades(replay, backtest)
