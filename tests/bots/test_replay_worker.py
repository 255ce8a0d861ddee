"""A replay started through the API runs to completion on a real Celery worker (queue ``bots``),
with its progress, result and worker on the job row and its paper account removed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from apps.bots.models import BotReplay
from apps.exchanges.models import PaperAccount
from apps.marketdata.timeframes import timeframe_ms
from tests.backtests.api_support import wait_for
from tests.bots.support import store_candles
from tests.factories import BotFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

HOUR = timeframe_ms("1h")
LAST = 1_700_002_800_000
CLOSES = [10.0, 9.0, 8.0, 7.0, 6.0, 10.0, 11.0, 12.0, 9.0, 8.0, 7.0, 6.5, 6.0, 9.0, 10.0, 11.0]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def test_replay_started_through_the_api_completes_on_a_worker(celery_worker):
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    store_candles(last_open_ms=LAST, closes=CLOSES)
    bot = BotFactory(owner=user, strategy="sma_crossover", params={"fast": 2, "slow": 3}, timeframe="1h")
    first = LAST - (len(CLOSES) - 1) * HOUR

    response = client.post(
        f"/api/v1/bots/{bot.pk}/replay/", {"start": iso(first), "end": iso(LAST)}, format="json"
    )
    assert response.status_code == 202, response.content
    replay_id = response.json()["id"]

    replay = wait_for(
        lambda: BotReplay.objects.filter(pk=replay_id, status__in=["completed", "failed"]).first(), timeout=60
    )
    assert replay.status == "completed", replay.error
    assert replay.worker and replay.task_id
    body = client.get(f"/api/v1/bots/{bot.pk}/replays/{replay_id}/").json()
    assert body["progress"] == 100
    assert len(body["result"]["trades"]) >= 1
    assert body["result"]["candles"] == len(CLOSES)
    assert not PaperAccount.objects.filter(replay_id=replay_id).exists()
