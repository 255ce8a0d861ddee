"""Crash safety on real processes: a worker SIGKILLed mid-tick, between writing the order and
recording the tick; another worker resumes the bot. No duplicate order (by client order id, at
the paper exchange), no missed candle."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone

from apps.bots import services
from apps.bots.models import Bot
from apps.bots.services.loop import TICK_TASK
from apps.exchanges.models import PaperOrder
from apps.orders.models import Order
from tests.backtests.api_support import wait_for
from tests.bots.support import CROSS_PARAMS, store_candles_on_replay
from tests.factories import BotFactory, UserFactory
from tests.support.servers import celery_worker as start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

STALL_QUEUE = "bots-stall"


def test_a_worker_killed_between_placing_and_recording_a_tick_leaves_one_order_and_the_candle_is_ticked(
    celery_worker, tmp_path
):
    candle = store_candles_on_replay()  # its last candle is an SMA 2/3 cross: one market buy
    bot = BotFactory(
        owner=UserFactory(), status="running", timeframe="1h", strategy="sma_crossover", params=CROSS_PARAMS
    )
    client_order_id = f"bot{bot.pk}-{candle}-0"

    with start_worker(
        app_module="tests.bots.stalling_worker",
        hostname="stalling",
        queues=STALL_QUEUE,
        concurrency=1,
        log_path=tmp_path / "stalling.log",
    ) as stalling:
        current_app.send_task(TICK_TASK, args=[bot.pk, candle], queue=STALL_QUEUE)
        # The order is written and the paper exchange has it (filled); the tick is not recorded.
        wait_for(lambda: PaperOrder.objects.filter(client_order_id=client_order_id).exists(), timeout=30)
        stalling.send_signal(signal.SIGKILL)
        stalling.wait(timeout=10)
    bot.refresh_from_db()
    assert (bot.tick_candle_ms, bot.last_candle_ms) == (candle, None)  # claimed, never recorded

    # The dead worker's lease runs out (LEASE_SECONDS; skipped here), then the beat job's
    # enqueue sends the candle again and the other worker (queue ``bots``) ticks it.
    Bot.objects.filter(pk=bot.pk).update(tick_lease_until=timezone.now() - timedelta(seconds=1))
    assert services.bots_enqueue_due() == 1
    wait_for(lambda: Bot.objects.get(pk=bot.pk).last_candle_ms == candle, timeout=30)

    bot.refresh_from_db()
    assert (bot.tick_candle_ms, bot.failures, bot.status) == (None, 0, "running")
    # The retick asked for the same client order id; nothing was sent twice.
    assert PaperOrder.objects.filter(client_order_id=client_order_id).count() == 1
    assert list(
        Order.objects.filter(bot=bot, role=Order.Role.ENTRY).values_list("client_order_id", "status")
    ) == [(client_order_id, "filled")]
    # Both ticks decided the same candle: two signal lines, one order.
    assert bot.events.filter(kind="signal").count() == 2
    assert not bot.events.filter(kind="error").exists()
