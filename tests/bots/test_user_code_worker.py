"""A paper bot on a user-written strategy on a real Celery worker (Redis broker, test PostgreSQL).

Created and started through the API with the user's strategy pinned to its version, activated
by the worker (which loads the code into a sandbox session), ticked by the beat job's enqueue
for the candle that just closed on the replay feed: the user's code, in its sandbox, decides
the entry and the order reaches the paper exchange once under its deterministic client order id.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.backtests.services import strategy_create
from apps.bots import services
from apps.bots.models import Bot, BotEvent
from apps.exchanges.models import PaperOrder
from tests.backtests.api_support import wait_for
from tests.bots.support import CROSS_PARAMS, store_candles_on_replay
from tests.bots.test_user_code_bots import USER_SMA
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_paper_bot_on_a_user_strategy_started_through_the_api_trades_on_the_replay_feed(celery_worker):
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    strategy = strategy_create(user=user, source=USER_SMA)
    candle = store_candles_on_replay()  # its last candle is a fast-over-slow cross (2/3)

    body = {
        "name": "user code bot",
        "strategy_id": strategy.pk,
        "params": CROSS_PARAMS,
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
    }
    created = client.post("/api/v1/bots/", body, format="json")
    assert created.status_code == 201, created.content
    bot_id = created.json()["id"]
    assert created.json()["strategy_kind"] == "user" and created.json()["strategy_version"] == 1
    assert client.post(f"/api/v1/bots/{bot_id}/start/").json()["status"] == "starting"
    wait_for(lambda: Bot.objects.get(pk=bot_id).status == "running", timeout=30)

    assert services.bots_enqueue_due() == 1
    client_order_id = f"bot{bot_id}-{candle}-0"
    signal = wait_for(lambda: BotEvent.objects.filter(bot_id=bot_id, kind="signal").first(), timeout=60)
    assert signal.data["signals"] == ["long_entries"]
    assert signal.data["client_order_ids"] == [client_order_id]
    wait_for(lambda: Bot.objects.get(pk=bot_id).last_candle_ms == candle, timeout=30)
    order = PaperOrder.objects.get(client_order_id=client_order_id)
    assert order.side == "buy" and order.type == "market"
    assert Bot.objects.get(pk=bot_id).status == "running"

    assert client.post(f"/api/v1/bots/{bot_id}/stop/").json()["status"] == "stopping"
    wait_for(lambda: Bot.objects.get(pk=bot_id).status == "stopped", timeout=30)
