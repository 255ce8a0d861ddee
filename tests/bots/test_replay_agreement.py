"""The acceptance of forward tests: a replay's trades equal a backtest of the same strategy,
parameters and candles (entry and exit times, prices, amounts, fees), on real BTC/USDT
hourly candles, for a signal strategy, an event strategy with limit and stop orders, grid
and DCA.

The replay runs the bot's code on the paper exchange through the real orders service;
``order_place`` sends an order after its transaction commits, so these tests commit
(``transaction=True``). The backtest goes through the backtest service's runner
(``strategy_run`` over ``load_candles``) with the config the replay reports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from apps.backtests.engine import Param, Strategy
from apps.backtests.engine.io import load_csv
from apps.backtests.models import StrategyKind
from apps.backtests.services.runner import load_candles, strategy_run
from apps.backtests.strategies import registry
from apps.bots import services
from apps.bots.models import BotReplay
from apps.core.jobs import JobStatus
from apps.exchanges.models import PaperAccount
from apps.marketdata.models import Market
from apps.marketdata.services import candles_import_arrays
from tests.factories import BotFactory

# Agreement to the last places needs PostgreSQL's exact 18-place decimals (SQLite rounds them).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_decimals]

CANDLES = 400
REL = 1e-9  # Decimal balances against the engine's floats: agreement to ~12 significant digits


class LimitStopSwing(Strategy):
    """A test strategy that trades with every resting order type a spot bot uses.

    Flat: an entry below the price (buy limit) on even cycles, above it (buy stop) on odd
    ones; an entry that has not filled within ``patience`` candles is cancelled and placed
    again. Filled: a protective sell stop under the fill; after ``hold`` candles the stop is
    cancelled and the position closed at market.
    """

    name = "test_limit_stop_swing"
    params = {
        "dip": Param("float", 0.006, min=0.0001, max=0.5),
        "breakout": Param("float", 0.004, min=0.0001, max=0.5),
        "stop": Param("float", 0.012, min=0.0001, max=0.5),
        "hold": Param("int", 6, min=1, max=100),
        "patience": Param("int", 4, min=1, max=100),
        "fraction": Param("float", 0.5, min=0.01, max=0.9),
    }

    def initialize(self) -> None:
        self.cycle = 0
        self.entry_id: int | None = None
        self.entry_since = 0
        self.stop_id: int | None = None
        self.held_since: int | None = None

    def on_fill(self, fill: Any) -> None:
        if fill.id == self.entry_id:
            self.entry_id = None
            self.held_since = self.candle.index
            self.stop_id = self.stop_market(None, fill.filled_price * (1 - self.p.stop))
        elif fill.id == self.stop_id:
            self.stop_id = None
            self.held_since = None
            self.cycle += 1

    def on_data(self, candle: Any) -> None:
        p = self.p
        if self.get_position_size() > 0:
            if self.held_since is not None and candle.index - self.held_since >= p.hold:
                if self.stop_id is not None:
                    self.cancel(self.stop_id)
                    self.stop_id = None
                self.close_position()
                self.held_since = None
                self.cycle += 1
            return
        if self.entry_id is not None and candle.index - self.entry_since < p.patience:
            return
        if self.entry_id is not None:
            self.cancel(self.entry_id)
        amount = self.get_equity() * p.fraction / candle.close
        if self.cycle % 2 == 0:
            self.entry_id = self.buy_limit(amount, candle.close * (1 - p.dip))
        else:
            self.entry_id = self.stop_market(amount, candle.high * (1 + p.breakout), side="buy")
        self.entry_since = candle.index


@pytest.fixture
def btc_candles(shared_data_dir):
    """The last ``CANDLES`` real BTC/USDT 1h candles, stored through the market-data service."""
    return store_btc_candles(shared_data_dir, CANDLES)


def store_btc_candles(shared_data_dir, count: int):
    """The last ``count`` real BTC/USDT 1h candles, stored through the market-data service."""
    candles = load_csv(shared_data_dir / "ohlcv" / "binance_BTCUSDT_1h.csv.gz")
    candles = candles.slice(len(candles) - count, len(candles))
    import numpy as np

    ohlcv = np.column_stack([candles.open, candles.high, candles.low, candles.close, candles.volume])
    candles_import_arrays(
        exchange="binance", symbol="BTC/USDT", timeframe="1h", ts=candles.timestamp, ohlcv=ohlcv
    )
    # The engine has no lot or tick sizes; a market without them makes the two comparable to
    # the last place (with them, the bot rounds amounts down to the lot and prices to the tick:
    # test_replay_on_the_real_lot_size_rounds_the_backtest_amounts_down).
    Market.objects.filter(symbol="BTC/USDT").update(precision_amount=None, precision_price=None)
    return candles


@pytest.fixture
def test_strategy(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, LimitStopSwing.name, LimitStopSwing)
    return LimitStopSwing


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def replay_and_backtest(user, candles, *, strategy: str, params: dict, **bot_fields):
    bot = BotFactory(
        owner=user,
        strategy=strategy,
        params=registry.get_strategy_class(strategy).validate(params),
        timeframe="1h",
        allocated_capital=Decimal("10000"),
        **bot_fields,
    )
    start, end = _when(candles.timestamp[0]), _when(candles.timestamp[-1])
    replay = services.bot_replay_create(bot=bot, start=start, end=end, enqueue=False)
    status = services.bot_replay_execute(replay_id=replay.pk)
    replay = BotReplay.objects.get(pk=replay.pk)
    assert status == JobStatus.COMPLETED, replay.error
    backtest = strategy_run(
        kind=StrategyKind.BUILTIN,
        name=strategy,
        params=bot.params,
        candles=load_candles(
            exchange="binance",
            symbol="BTC/USDT",
            timeframe="1h",
            start=start,
            end=int(candles.timestamp[-1]) + 1,
        ),
        config=replay.result["config"],
    )
    return replay, backtest


def assert_same_trades(replay: BotReplay, backtest) -> None:
    expected = backtest.trades_as_records()
    got = replay.result["trades"]
    assert [(t["entry_time"], t["exit_time"]) for t in got] == [
        (t["entry_time"], t["exit_time"]) for t in expected
    ]
    for mine, theirs in zip(got, expected, strict=True):
        for field in ("size", "entry_price", "exit_price", "fees", "pnl"):
            assert mine[field] == pytest.approx(theirs[field], rel=REL), (field, mine, theirs)
    assert replay.result["equity"]["end"] == pytest.approx(backtest.metrics["end_equity"], rel=REL)


def test_signal_strategy_replay_equals_its_backtest(user, btc_candles):
    replay, backtest = replay_and_backtest(
        user, btc_candles, strategy="sma_crossover", params={"fast": 5, "slow": 20}
    )
    assert len(backtest.trades_as_records()) >= 5
    assert_same_trades(replay, backtest)


def test_event_strategy_with_limit_and_stop_orders_replay_equals_its_backtest(
    user, btc_candles, test_strategy
):
    replay, backtest = replay_and_backtest(user, btc_candles, strategy=test_strategy.name, params={})
    reasons = {t["exit_reason"] for t in replay.result["trades"]}
    assert {"stop", "signal"} <= reasons  # stopped out and closed at market both happened
    assert len(backtest.trades_as_records()) >= 5
    assert_same_trades(replay, backtest)


def test_grid_replay_equals_its_backtest(user, btc_candles):
    replay, backtest = replay_and_backtest(
        user, btc_candles, strategy="grid", params={"levels": 12, "range_pct": 0.05}
    )
    assert backtest.metrics["total_trades"] >= 1
    assert_same_trades(replay, backtest)


def test_dca_replay_equals_its_backtest(user, btc_candles):
    replay, backtest = replay_and_backtest(
        user, btc_candles, strategy="dca", params={"take_profit": 0.01, "price_deviation": 0.008}
    )
    assert len(backtest.trades_as_records()) >= 3
    assert_same_trades(replay, backtest)


def test_replay_uses_its_own_paper_account_and_removes_it(user, btc_candles):
    replay, _ = replay_and_backtest(
        user, btc_candles, strategy="sma_crossover", params={"fast": 5, "slow": 20}
    )
    assert not PaperAccount.objects.filter(replay_id=replay.pk).exists()
    assert not PaperAccount.objects.filter(bot_id=replay.bot_id).exists()  # the bot's own was never touched


def test_replay_on_the_real_lot_size_rounds_the_backtest_amounts_down(user, btc_candles):
    Market.objects.filter(symbol="BTC/USDT").update(precision_amount=Decimal("0.00001"))
    replay, backtest = replay_and_backtest(
        user, btc_candles, strategy="sma_crossover", params={"fast": 5, "slow": 20}
    )
    expected = backtest.trades_as_records()
    got = replay.result["trades"]
    assert [(t["entry_time"], t["exit_time"]) for t in got] == [
        (t["entry_time"], t["exit_time"]) for t in expected
    ]
    for mine, theirs in zip(got, expected, strict=True):
        assert Decimal(repr(mine["size"])) % Decimal("0.00001") == 0
        assert mine["size"] == pytest.approx(theirs["size"], rel=1e-3)
        assert mine["entry_price"] == pytest.approx(theirs["entry_price"], rel=REL)


def test_a_running_replay_stops_at_its_next_candle_when_cancelled(user, btc_candles):
    import threading
    import time

    from django.db import connection

    from apps.core.jobs import job_cancel

    bot = BotFactory(
        owner=user,
        strategy="dca",
        params=registry.get_strategy_class("dca").validate({}),
        timeframe="1h",
        allocated_capital=Decimal("10000"),
    )
    replay = services.bot_replay_create(
        bot=bot, start=_when(btc_candles.timestamp[0]), end=_when(btc_candles.timestamp[-1]), enqueue=False
    )
    outcome = []

    def run():
        try:
            outcome.append(services.bot_replay_execute(replay_id=replay.pk, worker="thread"))
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while BotReplay.objects.get(pk=replay.pk).progress < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    job_cancel(BotReplay.objects.get(pk=replay.pk))
    worker.join(timeout=30)
    replay.refresh_from_db()
    assert outcome == [JobStatus.CANCELLED]
    assert replay.status == JobStatus.CANCELLED and 5 <= replay.progress < 100
    assert not PaperAccount.objects.filter(replay_id=replay.pk).exists()
