"""Bots on user-written strategies: the user's code runs in sandbox sessions (one process per
bot, pooled per worker process), and trades as its backtest does.

* forward-test agreement: a replay of a user signal strategy, and of a user event strategy
  with limit and stop orders, equals the backtest of the same code, parameters and candles;
* live ticks: a user event strategy ticked candle by candle, each tick in another sandbox
  process (two pools, alternating), trades as its backtest: its state travels as JSON;
* limits: a strategy that loops, eats memory or raises puts the bot in error with the reason
  at once (no retries: user code fails the same way again), and the worker carries on.

Real BTC/USDT hourly candles, the real orders service and paper exchange; ``order_place``
sends after its commit, so these tests commit (``transaction=True``).
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.backtests.models import StrategyKind
from apps.backtests.services import strategy_create
from apps.backtests.services.runner import load_candles, strategy_run
from apps.backtests.strategies.sandbox.session import SessionPool
from apps.bots import services
from apps.bots.models import Bot, BotReplay
from apps.bots.services import user_code
from apps.bots.services.accounts import bot_paper_account
from apps.core.jobs import JobStatus
from apps.exchanges.models import PaperAccount
from tests.bots.test_event_bots import feed, live_candles, live_feed  # noqa: F401 (fixtures)
from tests.bots.test_replay_agreement import REL, assert_same_trades, btc_candles  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_decimals]

USER_SMA = textwrap.dedent(
    """
    import numpy as np
    import pandas as pd


    class UserCross(SignalStrategy):
        name = "user_cross"
        params = {"fast": Param("int", 5, min=2), "slow": Param("int", 20, min=3)}

        def signals(self, data):
            close = pd.Series(data.close)
            fast = close.rolling(self.p.fast).mean().to_numpy()
            slow = close.rolling(self.p.slow).mean().to_numpy()
            above = fast > slow
            prev = np.concatenate(([False], above[:-1]))
            valid = ~np.isnan(slow)
            prev_valid = np.concatenate(([False], valid[:-1]))
            return Signals(long_entries=above & ~prev & prev_valid, long_exits=~above & prev & valid)
    """
)

# ``LimitStopSwing`` of test_replay_agreement, written as a user would.
USER_SWING = textwrap.dedent(
    """
    class UserSwing(Strategy):
        name = "user_swing"
        params = {
            "dip": Param("float", 0.006, min=0.0001, max=0.5),
            "breakout": Param("float", 0.004, min=0.0001, max=0.5),
            "stop": Param("float", 0.012, min=0.0001, max=0.5),
            "hold": Param("int", 6, min=1, max=100),
            "patience": Param("int", 4, min=1, max=100),
            "fraction": Param("float", 0.5, min=0.01, max=0.9),
        }

        def initialize(self):
            self.cycle = 0
            self.entry_id = None
            self.entry_since = 0
            self.stop_id = None
            self.held_since = None

        def on_fill(self, fill):
            if fill.id == self.entry_id:
                self.entry_id = None
                self.held_since = self.candle.index
                self.stop_id = self.stop_market(None, fill.filled_price * (1 - self.p.stop))
            elif fill.id == self.stop_id:
                self.stop_id = None
                self.held_since = None
                self.cycle += 1

        def on_data(self, candle):
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
    """
)


@pytest.fixture(autouse=True)
def fresh_pool():
    user_code.session_pool().clear()
    yield
    user_code.session_pool().clear()


def user_bot(user, source: str, params: dict | None = None, **fields) -> Bot:
    strategy = strategy_create(user=user, source=source)
    bot = services.bot_create(
        user=user,
        name=f"user bot {strategy.pk}",
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        strategy_id=strategy.pk,
        params=params or {},
        allocated_capital=Decimal("10000"),
        **fields,
    )
    assert bot.strategy_kind == StrategyKind.USER and bot.strategy_version is not None
    return bot


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def replay_and_backtest(user, candles, source: str, params: dict | None = None):
    bot = user_bot(user, source, params)
    start, end = _when(candles.timestamp[0]), _when(candles.timestamp[-1])
    replay = services.bot_replay_create(bot=bot, start=start, end=end, enqueue=False)
    status = services.bot_replay_execute(replay_id=replay.pk)
    replay = BotReplay.objects.get(pk=replay.pk)
    assert status == JobStatus.COMPLETED, replay.error
    assert replay.strategy_version_id == bot.strategy_version_id
    backtest = strategy_run(
        kind=StrategyKind.USER,
        source=bot.strategy_version.source,
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


def test_user_signal_strategy_replay_equals_its_backtest(user, btc_candles):  # noqa: F811
    replay, backtest = replay_and_backtest(user, btc_candles, USER_SMA, {"fast": 5, "slow": 20})
    assert len(backtest.trades_as_records()) >= 5
    assert_same_trades(replay, backtest)


def test_user_event_strategy_with_limit_and_stop_orders_replay_equals_its_backtest(user, btc_candles):  # noqa: F811
    replay, backtest = replay_and_backtest(user, btc_candles, USER_SWING)
    reasons = {t["exit_reason"] for t in replay.result["trades"]}
    assert {"stop", "signal"} <= reasons  # stopped out and closed at market both happened
    assert len(backtest.trades_as_records()) >= 5
    assert_same_trades(replay, backtest)
    assert not PaperAccount.objects.filter(replay_id=replay.pk).exists()


def test_a_user_event_bot_ticked_live_in_another_process_every_candle_trades_as_its_backtest(
    user,
    live_feed,  # noqa: F811
    live_candles,  # noqa: F811
    monkeypatch,
):
    bot = user_bot(user, USER_SWING)
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.RUNNING)
    account = bot_paper_account(bot=bot)
    PaperAccount.objects.filter(pk=account.pk).update(max_volume_fraction=None)  # as the replay's
    pools = [SessionPool(), SessionPool()]
    try:
        for i in range(len(live_candles) - 1):  # the last candle's orders would fill after the period
            # Each tick in the other worker process's pool: the strategy object never survives.
            monkeypatch.setattr(user_code, "_pool", pools[i % 2])
            live_feed.tick(bot, i)
        sessions = [pool._entries[bot.pk].session for pool in pools]
        # Each session ran (nearly) every other tick: half the ticks, less the 10 of slack
        # this had with 400 candles (190 of 199 and 200).
        ticks_each = (len(live_candles) - 1) // 2
        assert all(s is not None and s.alive and s.steps >= ticks_each - 10 for s in sessions)
        assert pools[0].started == pools[1].started == 1  # one start per process, not per tick
    finally:
        for pool in pools:
            pool.clear()
    got = live_feed.close_out(bot)
    state = Bot.objects.get(pk=bot.pk).strategy_state
    assert set(state["attrs"]) == {"cycle", "entry_id", "entry_since", "stop_id", "held_since"}

    start, end = _when(live_candles.timestamp[0]), _when(live_candles.timestamp[-1])
    replay = services.bot_replay_create(bot=bot, start=start, end=end, enqueue=False)
    assert services.bot_replay_execute(replay_id=replay.pk) == JobStatus.COMPLETED
    replay.refresh_from_db()
    backtest = strategy_run(
        kind=StrategyKind.USER,
        source=USER_SWING,
        params=bot.params,
        candles=load_candles(
            exchange="binance",
            symbol="BTC/USDT",
            timeframe="1h",
            start=start,
            end=int(live_candles.timestamp[-1]) + 1,
        ),
        config=replay.result["config"],
    )
    expected = backtest.trades_as_records()
    assert len(expected) >= 5
    assert [(t["entry_time"], t["exit_time"]) for t in got] == [
        (t["entry_time"], t["exit_time"]) for t in expected
    ]
    for mine, theirs in zip(got, expected, strict=True):
        for field in ("size", "entry_price", "exit_price", "fees", "pnl"):
            assert mine[field] == pytest.approx(theirs[field], rel=REL), (field, mine, theirs)


def _tick_fails(feed, bot: Bot, i: int) -> Bot:  # noqa: F811
    feed.source.cursor = i + 1
    assert services.bot_tick(bot_id=bot.pk, candle_ms=int(feed.candles.timestamp[i])) is None
    return Bot.objects.get(pk=bot.pk)


def _running(bot: Bot) -> Bot:
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.RUNNING)
    return bot


@pytest.mark.parametrize(
    ("body", "settings_", "reason"),
    [
        ("while True:\n    pass", {"BOT_SANDBOX_CPU_SECONDS": 1}, "exceeded the CPU-time limit of 1 s"),
        ("x = [0] * (10 ** 10)", {"BOT_SANDBOX_MEMORY_MB": 1024}, "ran out of memory"),
        ("x = 1 / (len(data.close) - len(data.close))", {}, "line 9: ZeroDivisionError"),
    ],
    ids=["endless-loop", "memory-bomb", "raises"],
)
def test_a_user_strategy_that_breaks_a_limit_or_raises_puts_the_bot_in_error_with_the_reason(
    user,
    feed,  # noqa: F811
    settings,
    body,
    settings_,
    reason,
):
    for name, value in settings_.items():
        setattr(settings, name, value)
    lines = textwrap.indent(body, " " * 8)
    source = (
        "import numpy as np\n\n\n"
        "class Bad(SignalStrategy):\n"
        "    name = 'bad'\n\n"
        "    def signals(self, data):\n"
        "        n = len(data.close)\n"
        f"{lines}\n"
        "        return Signals(long_entries=np.zeros(n, dtype=bool))\n"
    )
    bot = _running(user_bot(user, source))
    bot = _tick_fails(feed, bot, 30)
    assert bot.status == Bot.Status.ERROR  # at once: user code fails the same way on every retry
    assert reason in bot.error, bot.error
    assert bot.events.filter(kind="error", message__contains=reason).exists()
    assert len(user_code.session_pool()) == 0  # the broken session was closed
    # The worker is unharmed: another user bot ticks in the same process.
    healthy = _running(user_bot(user, USER_SMA))
    feed.source.cursor = 32
    assert services.bot_tick(bot_id=healthy.pk, candle_ms=int(feed.candles.timestamp[31])) is not None


def test_a_crashed_sandbox_is_retried_with_a_new_process_on_the_next_tick(user, feed):  # noqa: F811
    import os
    import signal

    bot = _running(user_bot(user, USER_SMA))
    started = user_code.session_pool().started
    feed.tick(bot, 30)
    session = user_code.session_pool()._entries[bot.pk].session
    os.kill(session.proc.pid, signal.SIGKILL)
    session.proc.wait()
    # The pool notices the dead process before using it: the tick runs in a new one.
    feed.tick(bot, 31)
    assert user_code.session_pool().started == started + 2
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.RUNNING
