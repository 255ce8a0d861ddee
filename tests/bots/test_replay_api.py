"""Replay endpoints: start (202 with the job), strict input, period validation, list, detail,
cancel, owner scoping, the OpenAPI schema; and the job's lifecycle run in process."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.bots import services
from apps.bots.models import BotReplay
from apps.core.jobs import JobStatus
from apps.exchanges.models import PaperAccount
from apps.marketdata.timeframes import timeframe_ms
from tests.bots.support import store_candles
from tests.factories import BotFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

HOUR = timeframe_ms("1h")
LAST = 1_700_002_800_000  # an hour boundary
CLOSES = [10.0, 9.0, 8.0, 7.0, 6.0, 10.0, 11.0, 12.0, 9.0, 8.0, 7.0, 6.5, 6.0, 9.0, 10.0, 11.0]
FIRST = LAST - (len(CLOSES) - 1) * HOUR


def iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def replay_url(bot_id: int) -> str:
    return reverse("bots-api:bot-replay", args=[bot_id])


def replays_url(bot_id: int) -> str:
    return reverse("bots-api:bot-replays", args=[bot_id])


@pytest.fixture
def bot(user):
    store_candles(last_open_ms=LAST, closes=CLOSES)
    return BotFactory(owner=user, strategy="sma_crossover", params={"fast": 2, "slow": 3}, timeframe="1h")


def test_start_answers_202_with_a_pending_job_and_queues_it_after_commit(
    auth_client, bot, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("apps.bots.services.replay._enqueue", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post(
            replay_url(bot.pk), {"start": iso(FIRST), "end": iso(LAST)}, format="json"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["progress"] == 0
    assert body["bot"] == bot.pk and body["candles"] == len(CLOSES)
    assert body["strategy"] == "sma_crossover" and body["params"] == {"fast": 2, "slow": 3}
    assert body["strategy_version"] is None
    assert [r.pk for r in sent] == [body["id"]]


def test_input_is_strict_and_every_bad_field_is_listed(auth_client, bot):
    response = auth_client.post(replay_url(bot.pk), {"start": "yesterday", "speed": 2}, format="json")
    assert_error(response, 400, fields=["start", "end", "speed"])
    response = auth_client.post(replay_url(bot.pk), {"start": iso(LAST), "end": iso(FIRST)}, format="json")
    assert_error(response, 400, fields=["end"])


def test_a_period_without_stored_candles_is_refused(auth_client, bot):
    response = auth_client.post(
        replay_url(bot.pk), {"start": iso(LAST + 10 * HOUR), "end": iso(LAST + 20 * HOUR)}, format="json"
    )
    error = assert_error(response, 400, fields=["start"])
    assert "stored" in error["fields"]["start"][0]
    assert not BotReplay.objects.exists()


def test_a_second_active_replay_is_a_conflict(auth_client, bot):
    services.bot_replay_create(bot=bot, start=_dt(FIRST), end=_dt(LAST), enqueue=False)
    response = auth_client.post(replay_url(bot.pk), {"start": iso(FIRST), "end": iso(LAST)}, format="json")
    assert_error(response, 409, "conflict")


def test_a_replay_of_a_user_strategy_bot_is_accepted_and_keeps_the_pinned_version(
    auth_client, user, django_capture_on_commit_callbacks
):
    from apps.backtests.services import strategy_create, strategy_update

    source = "class S(Strategy):\n    name = 's'\n    def on_data(self, candle):\n        pass\n"
    strategy = strategy_create(user=user, source=source)
    bot = services.bot_create(
        user=user, name="mine", strategy_id=strategy.pk, exchange="binance", symbol="BTC/USDT", timeframe="1h"
    )
    strategy_update(strategy=strategy, source=source + "# v2\n")
    store_candles(last_open_ms=LAST, closes=CLOSES)
    with django_capture_on_commit_callbacks(execute=False):
        response = auth_client.post(
            replay_url(bot.pk), {"start": iso(FIRST), "end": iso(LAST)}, format="json"
        )
    assert response.status_code == 202, response.content
    assert response.json()["strategy_version"] == 1
    replay = BotReplay.objects.get(pk=response.json()["id"])
    assert replay.strategy_version == bot.strategy_version and replay.strategy_version.version == 1


def _dt(ms: int):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_another_users_bot_and_replay_are_404(auth_client, other_user):
    store_candles(last_open_ms=LAST, closes=CLOSES)
    theirs = BotFactory(
        owner=other_user, strategy="sma_crossover", params={"fast": 2, "slow": 3}, timeframe="1h"
    )
    replay = services.bot_replay_create(bot=theirs, start=_dt(FIRST), end=_dt(LAST), enqueue=False)
    payload = {"start": iso(FIRST), "end": iso(LAST)}
    assert_error(auth_client.post(replay_url(theirs.pk), payload, format="json"), 404, "not_found")
    assert_error(auth_client.get(replays_url(theirs.pk)), 404, "not_found")
    detail = reverse("bots-api:bot-replay-detail", args=[theirs.pk, replay.pk])
    assert_error(auth_client.get(detail), 404, "not_found")
    cancel = reverse("bots-api:bot-replay-cancel", args=[theirs.pk, replay.pk])
    assert_error(auth_client.post(cancel), 404, "not_found")
    assert BotReplay.objects.get(pk=replay.pk).status == JobStatus.PENDING


def test_list_detail_and_cancel(auth_client, bot):
    replay = services.bot_replay_create(bot=bot, start=_dt(FIRST), end=_dt(LAST), enqueue=False)
    body = auth_client.get(replays_url(bot.pk)).json()
    assert body["count"] == 1 and body["results"][0]["id"] == replay.pk
    detail = reverse("bots-api:bot-replay-detail", args=[bot.pk, replay.pk])
    assert auth_client.get(detail).json()["status"] == "pending"
    cancel = reverse("bots-api:bot-replay-cancel", args=[bot.pk, replay.pk])
    response = auth_client.post(cancel)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert_error(auth_client.post(cancel), 409, "conflict")  # already finished
    # A cancelled replay is not claimed by a late task.
    assert services.bot_replay_execute(replay_id=replay.pk) is None


def test_schema_documents_the_replay_routes(auth_client):
    schema = auth_client.get(reverse("api-schema"), {"format": "json"}).json()
    paths = schema["paths"]
    assert "post" in paths["/api/v1/bots/{id}/replay/"]
    assert "get" in paths["/api/v1/bots/{id}/replays/"]
    assert "get" in paths["/api/v1/bots/{id}/replays/{replay_id}/"]
    assert "post" in paths["/api/v1/bots/{id}/replays/{replay_id}/cancel/"]
    assert "BotReplay" in schema["components"]["schemas"]


@pytest.mark.django_db(transaction=True)
def test_a_replay_runs_to_completed_with_its_trades_metrics_and_equity(user):
    store_candles(last_open_ms=LAST, closes=CLOSES)
    bot = BotFactory(owner=user, strategy="sma_crossover", params={"fast": 2, "slow": 3}, timeframe="1h")
    replay = services.bot_replay_create(bot=bot, start=_dt(FIRST), end=_dt(LAST), enqueue=False)
    assert services.bot_replay_execute(replay_id=replay.pk, worker="test") == JobStatus.COMPLETED
    replay.refresh_from_db()
    assert replay.status == JobStatus.COMPLETED and replay.progress == 100
    result = replay.result
    assert result["candles"] == len(CLOSES)
    assert len(result["trades"]) >= 1
    trade = result["trades"][0]
    assert trade["entry_time"] < trade["exit_time"] and trade["fees"] > 0
    assert result["metrics"]["total_trades"] == len(result["trades"])
    assert result["equity"]["start"] == 1000.0 and len(result["equity"]["curve"]) == len(CLOSES)
    assert result["config"]["close_at_end"] is False
    assert not PaperAccount.objects.filter(replay_id=replay.pk).exists()
    # The replay's orders and fills were on its throw-away account: not in the bot's own log.
    assert list(bot.events.values_list("kind", flat=True)) == ["lifecycle"]
    # A second delivery of the task does nothing.
    assert services.bot_replay_execute(replay_id=replay.pk) is None


@pytest.mark.django_db(transaction=True)
def test_a_replay_sent_again_after_its_worker_died_runs_on_a_fresh_account(user):
    from tests.factories import PaperAccountFactory

    store_candles(last_open_ms=LAST, closes=CLOSES)
    bot = BotFactory(owner=user, strategy="sma_crossover", params={"fast": 2, "slow": 3}, timeframe="1h")
    replay = services.bot_replay_create(bot=bot, start=_dt(FIRST), end=_dt(LAST), enqueue=False)
    # Attempt 1 claimed, then its worker died with its account; the reaper sent attempt 2
    # (tests/core/test_jobs.py): the row as the reaper leaves it.
    assert BotReplay.objects.claim(replay.pk, worker="doomed")
    PaperAccountFactory(user=user, replay_id=replay.pk)
    BotReplay.objects.filter(pk=replay.pk).update(status=JobStatus.PENDING, attempt=2)
    assert services.bot_replay_execute(replay_id=replay.pk, attempt=1) is None  # the old task, late
    assert services.bot_replay_execute(replay_id=replay.pk, worker="test", attempt=2) == JobStatus.COMPLETED
    replay.refresh_from_db()
    assert (replay.status, replay.attempt) == (JobStatus.COMPLETED, 2)
    assert not PaperAccount.objects.filter(replay_id=replay.pk).exists()  # the dead worker's too


def test_a_webhook_bot_has_no_strategy_to_replay(auth_client, user):
    store_candles(last_open_ms=LAST, closes=CLOSES)
    bot = BotFactory(owner=user, source="webhook", strategy="", params={}, timeframe="1h")
    response = auth_client.post(replay_url(bot.pk), {"start": iso(FIRST), "end": iso(LAST)}, format="json")
    assert_error(response, 409, "conflict")
    assert not BotReplay.objects.exists()


def test_a_running_replays_orders_are_not_the_bots_trading(auth_client, user):
    """While a replay runs, its orders (bot set, on the replay's own paper account) stay out of
    the bot's orders, trades and performance, and the kill switch leaves them alone."""
    from decimal import Decimal

    from apps.orders.models import Order
    from apps.risk.killswitch import NOT_A_REPLAY
    from tests.bots.test_api_trading import filled
    from tests.factories import FillFactory, OrderFactory, PaperAccountFactory

    bot = BotFactory(owner=user, strategy="sma_crossover", timeframe="1h")
    own = filled(bot, "buy", "1", "100", hours=0)
    replay_account = PaperAccountFactory(user=user, replay_id=987654)
    replayed = OrderFactory(
        owner=user,
        paper_account=replay_account,
        bot=bot,
        side="buy",
        type="market",
        price=None,
        amount=Decimal("2"),
        filled=Decimal("2"),
        average_price=Decimal("50"),
        status="filled",
    )
    FillFactory(order=replayed, price=Decimal("50"), amount=Decimal("2"), fee=Decimal("0"))
    resting = OrderFactory(owner=user, paper_account=replay_account, bot=bot, side="sell", price="60")
    orders = auth_client.get(reverse("bots-api:bot-orders", args=[bot.pk])).json()
    assert [o["id"] for o in orders["results"]] == [own.pk]
    trades = auth_client.get(reverse("bots-api:bot-trades", args=[bot.pk])).json()
    assert {t["order"] for t in trades["results"]} == {own.pk}
    performance = auth_client.get(reverse("bots-api:bot-performance", args=[bot.pk])).json()
    assert performance["fills"] == 1 and performance["position"]["size"] == 1.0
    assert not Order.objects.filter(pk=resting.pk).filter(NOT_A_REPLAY).exists()
    assert Order.objects.filter(pk=own.pk).filter(NOT_A_REPLAY).exists()
