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
from apps.bots.services.accounts import bot_paper_account
from apps.bots.services.loop import TICK_TASK
from apps.exchanges.models import PaperOrder
from apps.orders import services as orders
from apps.orders.models import Order
from tests.backtests.api_support import wait_for
from tests.bots.support import CROSS_PARAMS, store_candles_on_replay
from tests.factories import BotFactory, UserFactory
from tests.support.servers import celery_worker as start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

STALL_QUEUE = "bots-stall"


@pytest.mark.parametrize("stall_at", ["before_send", "after_send"])
def test_a_worker_killed_between_writing_the_order_and_recording_the_tick_leaves_one_order(
    celery_worker, tmp_path, monkeypatch, stall_at
):
    candle = store_candles_on_replay()  # its last candle is an SMA 2/3 cross: one market buy
    bot = BotFactory(
        owner=UserFactory(), status="running", timeframe="1h", strategy="sma_crossover", params=CROSS_PARAMS
    )
    client_order_id = f"bot{bot.pk}-{candle}-0"
    at_exchange = PaperOrder.objects.filter(client_order_id=client_order_id)

    monkeypatch.setenv("STALL_AT", stall_at)
    marker = tmp_path / "stalled"
    monkeypatch.setenv("STALL_MARKER", str(marker))
    with start_worker(
        app_module="tests.bots.stalling_worker",
        hostname="stalling",
        queues=STALL_QUEUE,
        concurrency=1,
        log_path=tmp_path / "stalling.log",
    ) as stalling:
        current_app.send_task(TICK_TASK, args=[bot.pk, candle], queue=STALL_QUEUE)
        if stall_at == "before_send":
            wait_for(marker.exists, timeout=30)  # the order written, not yet sent, nothing committed
        else:
            wait_for(at_exchange.exists, timeout=30)  # sent and filled, tick not recorded
        stalling.send_signal(signal.SIGKILL)
        stalling.wait(timeout=10)
    bot.refresh_from_db()
    assert (bot.tick_candle_ms, bot.last_candle_ms) == (candle, None)  # claimed, never recorded
    if stall_at == "before_send":
        # The paper order is written and sent in one transaction, which died with the worker:
        # nothing of it is stored, neither the order nor the exchange's.
        assert not Order.objects.filter(client_order_id=client_order_id).exists()
        assert at_exchange.count() == 0
    else:
        order = Order.objects.get(client_order_id=client_order_id)
        assert at_exchange.count() == 1

    # The dead worker's lease runs out (BOT_TICK_LEASE_SECONDS; skipped here), then the beat job's
    # enqueue sends the candle again and the other worker (queue ``bots``) ticks it.
    Bot.objects.filter(pk=bot.pk).update(tick_lease_until=timezone.now() - timedelta(seconds=1))
    assert services.bots_enqueue_due() == 1
    wait_for(lambda: Bot.objects.get(pk=bot.pk).last_candle_ms == candle, timeout=30)
    bot.refresh_from_db()
    assert (bot.tick_candle_ms, bot.failures, bot.status) == (None, 0, "running")
    assert not bot.events.filter(kind="error").exists()

    if stall_at == "before_send":
        # Flat still, the strategy decided the same entry under the same client order id, and
        # this time it was written, sent and filled; the order sync (a beat job) sends nothing more.
        assert bot.events.filter(kind="signal").count() == 2
        orders.order_sync(account=bot_paper_account(bot=bot))
        order = Order.objects.get(client_order_id=client_order_id)
    else:
        # Already long: the resumed tick decides nothing new.
        assert bot.events.filter(kind="signal").count() == 1
    assert at_exchange.count() == 1
    entries = Order.objects.filter(bot=bot, role=Order.Role.ENTRY)
    assert list(entries.values_list("pk", "client_order_id", "status")) == [
        (order.pk, client_order_id, "filled")
    ]
