"""Candle catch-up: a 1m bot whose tick was lost with its worker (or backed off) while newer
candles closed ticks every candle, in order, once; a bot far behind jumps to the newest candle
and says how many it skipped.

Offline (as under tests) the candle clock is the replay feed over the stored 1m candles; the
test moves its wall clock a minute at a time. Ticks place their orders through the real orders
service on the bot's paper account; the ticks the loop sends (the beat job, and a ``bot_tick``
task catching up) are run here through the task's body, one after another, as the ``bots``
queue would.
"""

from __future__ import annotations

import types
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.bots import services, tasks
from apps.bots.models import Bot
from apps.bots.services.loop import MAX_FAILURES, TICK_TASK, candle_to_tick
from apps.exchanges.models import PaperOrder
from apps.marketdata.timeframes import WEEK_ORIGIN_MS, timeframe_ms
from apps.orders.models import Order
from tests.bots.support import CROSS_PARAMS, store_candles
from tests.factories import BotFactory
from tests.support.cache import clear_cache

pytestmark = pytest.mark.django_db

MINUTE = timeframe_ms("1m")
# SMA 2/3: the fast average crosses above the slow one on candle 10 (a market buy), stays above
# on 11, and crosses below on 12 (the exit): orders on two of the three candles to catch up.
CLOSES = [10.0] * 6 + [9.0, 8.0, 7.0, 6.0, 10.0, 10.0, 4.0] + [4.0] * 7
A = 10  # the candle whose tick the dead worker held
ROUNDS = 10**6  # the replay feed has looped this often over the stored candles (a wall clock of today)


class Clock:
    """The replay feed's wall clock: ``at(i)`` puts it just after stored candle ``i`` closed."""

    def __init__(self, monkeypatch) -> None:
        from apps.marketdata import live

        self.now_ms = 0
        monkeypatch.setattr(live, "time", types.SimpleNamespace(time=lambda: self.now_ms / 1000))

    def at(self, index: int, *, speed: int = 1) -> None:
        self.now_ms = ((ROUNDS * len(CLOSES) + index + 1) * MINUTE + 600) // speed


class Loop:
    """The beat job and the ``bots`` queue, in this process: ``run()`` ticks what was sent, in
    the order it was sent, and what those ticks sent; ``ticked`` lists the candles ticked."""

    def __init__(self, monkeypatch, capture) -> None:
        self.capture = capture
        self.queue: list[tuple[int, int]] = []
        self.ticked: list[int] = []

        def send_task(name, args=None, *_, **kwargs):
            if name == TICK_TASK:  # the fills' follow-up jobs (risk, portfolio) are not these tests'
                assert kwargs["queue"] == "bots"
                self.queue.append(tuple(args))

        monkeypatch.setattr("celery.current_app.send_task", send_task)

    def beat(self) -> int:
        return services.bots_enqueue_due()

    def run(self) -> None:
        while self.queue:
            bot_id, candle = self.queue.pop(0)
            with self.capture(execute=True):  # order_place sends to the gateway after its commit
                if tasks.bot_tick(bot_id, candle):  # the task's body, as the worker runs it
                    self.ticked.append(candle)


@pytest.fixture
def candles(settings):
    settings.MARKETDATA_REPLAY_SPEED = 1.0
    clear_cache()  # the feed caches its candle count per market
    ts = store_candles(last_open_ms=1_000 * len(CLOSES) * MINUTE, closes=CLOSES, timeframe="1m")
    return [int(t) for t in ts]


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


@pytest.fixture
def loop(monkeypatch, django_capture_on_commit_callbacks):
    return Loop(monkeypatch, django_capture_on_commit_callbacks)


def one_minute_bot(user, **overrides) -> Bot:
    values = {"status": "running", "strategy": "sma_crossover", "params": CROSS_PARAMS, "timeframe": "1m"}
    return BotFactory(owner=user, **{**values, **overrides})


def bot_order_ids(bot: Bot) -> list[str]:
    ids = Order.objects.filter(bot=bot, client_order_id__startswith=f"bot{bot.pk}-").order_by("id")
    return list(ids.values_list("client_order_id", flat=True))


def test_a_1m_tick_abandoned_with_its_worker_while_two_candles_closed_ticks_each_candle_once_in_order(
    user, candles, clock, loop
):
    bot = one_minute_bot(user, last_candle_ms=candles[A - 1])
    # The worker that claimed candle A placed its order and died before recording the tick.
    clock.at(A)
    assert loop.beat() == 1 and loop.queue == [(bot.pk, candles[A])]
    loop.run()
    assert bot_order_ids(bot) == [f"bot{bot.pk}-{candles[A]}-0"]
    Bot.objects.filter(pk=bot.pk).update(
        last_candle_ms=candles[A - 1],
        tick_candle_ms=candles[A],
        tick_lease_until=timezone.now() + timedelta(seconds=60),
    )
    loop.ticked.clear()

    # Two more candles close while its lease holds: nothing is sent, nothing is claimed.
    clock.at(A + 2)
    assert loop.beat() == 0
    assert not services.bot_tick_claim(bot_id=bot.pk, candle_ms=candles[A + 2])

    # The lease runs out (BOT_TICK_LEASE_SECONDS; skipped here): the beat sends the abandoned
    # candle, not the newest, and each tick sends the next one at once.
    Bot.objects.filter(pk=bot.pk).update(tick_lease_until=timezone.now() - timedelta(seconds=1))
    assert loop.beat() == 1 and loop.queue == [(bot.pk, candles[A])]
    loop.run()
    assert loop.ticked == candles[A : A + 3]
    bot.refresh_from_db()
    assert (bot.last_candle_ms, bot.tick_candle_ms, bot.failures, bot.status) == (
        candles[A + 2],
        None,
        0,
        "running",
    )
    # Long already, the re-tick of A decided nothing new; the exit came on A + 2, after the
    # entry. Each order once, at the paper exchange too.
    entry, exit_ = f"bot{bot.pk}-{candles[A]}-0", f"bot{bot.pk}-{candles[A + 2]}-0"
    assert bot_order_ids(bot) == [entry, exit_]
    assert [PaperOrder.objects.filter(client_order_id=cid).count() for cid in (entry, exit_)] == [1, 1]
    signals = bot.events.filter(kind="signal").order_by("id")
    assert [(e.data["candle"], e.data["client_order_ids"]) for e in signals] == [
        (candles[A], [entry]),
        (candles[A + 2], [exit_]),
    ]
    assert not bot.events.filter(data__has_key="skipped").exists()
    assert not bot.events.filter(kind="error").exists()

    # Caught up: the next beat sends nothing until the next candle closes, then that one.
    assert loop.beat() == 0
    clock.at(A + 3)
    assert loop.beat() == 1 and loop.queue == [(bot.pk, candles[A + 3])]


def test_a_back_off_over_a_candle_close_retries_its_candle_then_the_next(user, candles, clock, loop):
    bot = one_minute_bot(
        user, last_candle_ms=candles[A - 1], failures=1, retry_at=timezone.now() - timedelta(seconds=1)
    )
    clock.at(A + 2)
    assert loop.beat() == 1 and loop.queue == [(bot.pk, candles[A])]
    loop.run()
    assert loop.ticked == candles[A : A + 3]


def test_a_candle_that_keeps_failing_gets_its_last_try_on_the_newest_candle(user, candles, clock, loop):
    """A candle missing from the data for good (a gap) would otherwise put the bot in error."""
    bot = one_minute_bot(
        user,
        last_candle_ms=candles[A - 1],
        failures=MAX_FAILURES - 1,
        retry_at=timezone.now() - timedelta(seconds=1),
    )
    clock.at(A + 2)
    assert loop.beat() == 1 and loop.queue == [(bot.pk, candles[A + 2])]
    loop.run()
    assert loop.ticked == [candles[A + 2]]
    (line,) = bot.events.filter(data__has_key="skipped")
    assert line.data == {"skipped": 2, "after": candles[A - 1], "candle": candles[A + 2]}
    assert f"failed {MAX_FAILURES - 1} times in a row" in line.message


def test_a_bot_further_behind_than_the_catch_up_limit_jumps_to_the_newest_and_says_so(
    user, candles, clock, loop, settings
):
    assert settings.BOT_CATCH_UP_CANDLES == 5
    bot = one_minute_bot(user, last_candle_ms=candles[3])
    clock.at(A)  # 7 candles behind
    assert loop.beat() == 1 and loop.queue == [(bot.pk, candles[A])]
    loop.run()
    assert loop.ticked == [candles[A]]
    bot.refresh_from_db()
    assert bot.last_candle_ms == candles[A]
    (line,) = bot.events.filter(kind="lifecycle", data__has_key="skipped")
    assert line.data == {"skipped": 6, "after": candles[3], "candle": candles[A]}
    assert line.message.startswith(f"Skipped 6 candle(s) after {candles[3]}: it was 7 candles behind")
    assert "BOT_CATCH_UP_CANDLES (5)" in line.message and "old signals" in line.message
    # It acted on the newest candle only: the cross on it, once.
    assert bot_order_ids(bot) == [f"bot{bot.pk}-{candles[A]}-0"]
    # Up to date now: no further line, no further tick.
    assert loop.beat() == 0
    clock.at(A + 1)
    loop.beat()
    loop.run()
    assert loop.ticked == [candles[A], candles[A + 1]]
    assert bot.events.filter(data__has_key="skipped").count() == 1


def test_just_within_the_limit_a_bot_catches_up_every_candle(user, candles, clock, loop):
    bot = one_minute_bot(user, last_candle_ms=candles[A - 5])
    clock.at(A)  # 5 candles behind: BOT_CATCH_UP_CANDLES
    assert loop.beat() == 1 and loop.queue == [(bot.pk, candles[A - 4])]
    loop.run()
    assert loop.ticked == candles[A - 4 : A + 1]
    assert not bot.events.filter(data__has_key="skipped").exists()


def test_on_a_fast_replay_feed_the_beat_catches_up_one_candle_per_run(user, candles, clock, loop, settings):
    """At 60x a 1m candle closes every second: a chain of ticks could never catch up."""
    settings.MARKETDATA_REPLAY_SPEED = 60.0
    clear_cache()
    one_minute_bot(user, last_candle_ms=candles[A - 1])
    clock.at(A + 2, speed=60)
    assert loop.beat() == 1
    loop.run()
    assert loop.ticked == [candles[A]]
    assert loop.beat() == 1
    loop.run()
    assert loop.ticked == [candles[A], candles[A + 1]]


@pytest.mark.parametrize(
    ("timeframe", "last", "newest", "expected"),
    [
        ("1m", 0, 3 * MINUTE, MINUTE),  # 3 behind: the next
        ("1m", 0, 6 * MINUTE, 6 * MINUTE),  # 6 behind: the newest
        ("1w", WEEK_ORIGIN_MS, WEEK_ORIGIN_MS + 2 * timeframe_ms("1w"), WEEK_ORIGIN_MS + timeframe_ms("1w")),
        # Calendar months: 2024-01-01 -> 2024-03-01 (2 behind) ticks 2024-02-01 next.
        ("1M", 1_704_067_200_000, 1_709_251_200_000, 1_706_745_600_000),
        # 2024-01-01 -> 2024-07-01: 6 behind, the newest.
        ("1M", 1_704_067_200_000, 1_719_792_000_000, 1_719_792_000_000),
    ],
)
def test_the_candle_to_tick_is_the_next_open_within_the_limit(timeframe, last, newest, expected):
    assert candle_to_tick(last_ms=last, newest_ms=newest, timeframe=timeframe) == expected
    assert candle_to_tick(last_ms=None, newest_ms=newest, timeframe=timeframe) == newest


def test_a_restarted_bot_starts_from_the_newest_candle_not_the_ones_it_was_stopped_for(user, monkeypatch):
    # Stopped two candles after its last tick, started again: the candles of the stop are not caught up.
    bot = BotFactory(owner=user, strategy="sma_crossover", params={"fast": 2, "slow": 3}, timeframe="1m")
    Bot.objects.filter(pk=bot.pk).update(status="stopped", last_candle_ms=1_700_000_000_000 - 3 * 60_000)
    monkeypatch.setattr("celery.current_app.send_task", lambda *args, **kwargs: None)
    services.bot_start(bot=Bot.objects.get(pk=bot.pk))
    bot.refresh_from_db()
    assert bot.status == "starting" and bot.last_candle_ms is None  # the beat sends the newest candle
