"""The bot loop's metrics: a tick is counted by result, and its lag observed."""

from __future__ import annotations

import time
import types

import pytest
from prometheus_client import REGISTRY

from apps.bots import services
from apps.core.observability import context
from apps.marketdata.timeframes import timeframe_ms
from tests.bots.support import CROSS_PARAMS, store_candles
from tests.factories import BotFactory
from tests.support.cache import clear_cache

pytestmark = pytest.mark.django_db

HOUR = timeframe_ms("1h")
CANDLE = 1_700_002_800_000


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def pinned_replay_clock(monkeypatch, settings):
    # As tests/bots/test_loop.py: the replay feed has just closed the last stored candle.

    from apps.marketdata import live

    settings.MARKETDATA_REPLAY_SPEED = 1.0
    wall_ms = 6 * 10_000 * HOUR + 1
    monkeypatch.setattr(live, "time", types.SimpleNamespace(time=lambda: wall_ms / 1000))
    clear_cache()


def tick(capture, bot, *, sent_seconds_ago: float | None = None):
    token = context.bind(task_sent_at=time.time() - sent_seconds_ago if sent_seconds_ago else None)
    try:
        with capture(execute=True):
            return services.bot_tick(bot_id=bot.pk, candle_ms=CANDLE)
    finally:
        context.reset(token)


def test_ticks_are_counted_by_result_and_the_lag_since_the_loop_sent_them(
    user, pinned_replay_clock, django_capture_on_commit_callbacks
):
    store_candles(last_open_ms=CANDLE)
    bot = BotFactory(
        owner=user, status="running", strategy="sma_crossover", params=CROSS_PARAMS, timeframe="1h"
    )
    ok, skipped, failed = (sample("trading_bot_ticks_total", result=r) for r in ("ok", "skipped", "failed"))
    lags = sample("trading_bot_tick_lag_seconds_count", source="replay")
    slow = sample("trading_bot_tick_lag_seconds_bucket", source="replay", le="2.0")

    assert tick(django_capture_on_commit_callbacks, bot, sent_seconds_ago=3) is not None
    assert tick(django_capture_on_commit_callbacks, bot) is None  # that candle is done: not claimed

    assert sample("trading_bot_ticks_total", result="ok") - ok == 1
    assert sample("trading_bot_ticks_total", result="skipped") - skipped == 1
    assert sample("trading_bot_ticks_total", result="failed") - failed == 0
    # Offline (replay feed) the lag runs from the moment the loop sent the tick: 3 s ago.
    assert sample("trading_bot_tick_lag_seconds_count", source="replay") - lags == 1
    assert sample("trading_bot_tick_lag_seconds_bucket", source="replay", le="2.0") - slow == 0
    assert sample("trading_bot_tick_duration_seconds_count", result="ok") >= 1


def test_a_failed_tick_is_counted_as_failed(user, pinned_replay_clock, django_capture_on_commit_callbacks):
    store_candles(last_open_ms=CANDLE - HOUR)  # the candle is not stored: stale data
    bot = BotFactory(
        owner=user, status="running", strategy="sma_crossover", params=CROSS_PARAMS, timeframe="1h"
    )
    failed = sample("trading_bot_ticks_total", result="failed")
    assert tick(django_capture_on_commit_callbacks, bot) is None
    assert sample("trading_bot_ticks_total", result="failed") - failed == 1


def test_live_candles_lag_from_the_candle_close(monkeypatch):
    from apps.bots import metrics

    monkeypatch.setattr(metrics.live, "candles_are_live", lambda exchange: True)
    bot = types.SimpleNamespace(exchange="binance", timeframe="1h")
    closed_ms = int(time.time() * 1000) - 7_000
    before = sample("trading_bot_tick_lag_seconds_count", source="live")
    quick = sample("trading_bot_tick_lag_seconds_bucket", source="live", le="5.0")
    metrics.tick_observed(result="ok", started=time.perf_counter(), bot=bot, candle_ms=closed_ms - HOUR)
    assert sample("trading_bot_tick_lag_seconds_count", source="live") - before == 1
    assert sample("trading_bot_tick_lag_seconds_bucket", source="live", le="5.0") - quick == 0
