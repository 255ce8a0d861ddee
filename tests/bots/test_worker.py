"""A paper bot on a real Celery worker (Redis broker, test PostgreSQL), queue ``bots``.

Started through the API, activated by the worker, ticked by the beat job's
enqueue for the candle that just closed, with duplicate deliveries of the same
tick: the strategy runs once for the candle and asks for its deterministic
client order id, and the order reaches the paper exchange once under that id.
"""

from __future__ import annotations

import pytest
from celery import current_app
from rest_framework.test import APIClient

from apps.bots import services
from apps.bots.models import Bot, BotEvent
from apps.bots.services.loop import TICK_TASK
from apps.exchanges.models import PaperOrder
from tests.backtests.api_support import wait_for
from tests.bots.support import CROSS_PARAMS, store_candles_on_replay
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_paper_bot_started_through_the_api_ticks_once_per_candle_on_the_bots_queue(celery_worker):
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    # Offline (as under tests) the bot's candle clock is the replay feed over stored candles.
    candle = store_candles_on_replay()

    body = {
        "name": "worker bot",
        "strategy": "sma_crossover",
        "params": CROSS_PARAMS,
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
    }
    bot_id = client.post("/api/v1/bots/", body, format="json").json()["id"]
    assert client.post(f"/api/v1/bots/{bot_id}/start/").json()["status"] == "starting"
    wait_for(lambda: Bot.objects.get(pk=bot_id).status == "running", timeout=30)

    # The beat job's enqueue, run twice, plus a duplicate delivery of the same tick.
    assert services.bots_enqueue_due() == 1
    services.bots_enqueue_due()
    current_app.send_task(TICK_TASK, args=[bot_id, candle], queue="bots")

    client_order_id = f"bot{bot_id}-{candle}-0"
    signal = wait_for(lambda: BotEvent.objects.filter(bot_id=bot_id, kind="signal").first(), timeout=30)
    assert signal.data["client_order_ids"] == [client_order_id]
    wait_for(lambda: Bot.objects.get(pk=bot_id).last_candle_ms == candle, timeout=30)
    assert PaperOrder.objects.filter(client_order_id=client_order_id).count() == 1
    # Give the duplicate deliveries time to arrive: the candle was decided once.
    wait_for(lambda: not Bot.objects.filter(pk=bot_id, tick_lease_until__isnull=False).exists(), timeout=10)
    assert BotEvent.objects.filter(bot_id=bot_id, kind="signal").count() == 1

    assert client.post(f"/api/v1/bots/{bot_id}/stop/").json()["status"] == "stopping"
    wait_for(lambda: Bot.objects.get(pk=bot_id).status == "stopped", timeout=30)
