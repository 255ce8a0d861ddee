"""The bot lifecycle through the API: legal transitions, 409 for illegal ones, owner scoping, the log."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.bots import services
from apps.bots.models import Bot, BotEvent
from apps.exchanges.models import PaperAccount
from tests.factories import BotFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db


def action(pk: int, name: str) -> str:
    return reverse(f"bots-api:bot-{name}", args=[pk])


def statuses(bot: Bot) -> list[tuple[str, str]]:
    return [(e.data.get("from"), e.data.get("to")) for e in bot.events.order_by("id") if "to" in e.data]


def test_full_lifecycle_writes_an_event_per_transition(auth_client, user, django_capture_on_commit_callbacks):
    bot = BotFactory(owner=user, strategy="sma_crossover", params={"fast": 2, "slow": 3})
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = auth_client.post(action(bot.pk, "start"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "starting"
    # The activation task and the live events are sent only after the commit.
    assert [fn.__qualname__.split(".")[0] for fn in sent] == ["publish_event", "publish_event", "bot_start"]

    services.bot_activate(bot_id=bot.pk)  # what the worker does
    bot.refresh_from_db()
    assert bot.status == "running"
    # A paper bot trades on its own paper account holding its allocated capital.
    account = PaperAccount.objects.get(user=user, bot_id=bot.pk)
    assert account.balances.get(asset="USDT").free == bot.allocated_capital

    assert auth_client.post(action(bot.pk, "pause")).json()["status"] == "paused"
    assert auth_client.post(action(bot.pk, "resume")).json()["status"] == "running"
    with django_capture_on_commit_callbacks(execute=False):
        response = auth_client.post(action(bot.pk, "stop"), {"close_position": False}, format="json")
    assert response.json()["status"] == "stopping"
    services.bot_finish_stop(bot_id=bot.pk)  # the worker: cancel orders, then stopped
    bot.refresh_from_db()
    assert bot.status == "stopped"
    assert statuses(bot) == [
        ("stopped", "starting"),
        ("starting", "running"),
        ("running", "paused"),
        ("paused", "running"),
        ("running", "stopping"),
        ("stopping", "stopped"),
    ]


@pytest.mark.parametrize(
    ("status", "name"),
    [
        ("stopped", "pause"),
        ("stopped", "resume"),
        ("stopped", "stop"),
        ("running", "start"),
        ("running", "resume"),
        ("paused", "pause"),
        ("paused", "start"),
        ("starting", "pause"),
        ("stopping", "start"),
        ("stopping", "stop"),
        ("error", "pause"),
        ("error", "resume"),
    ],
)
def test_illegal_transition_is_a_409_with_a_message_and_changes_nothing(auth_client, user, status, name):
    bot = BotFactory(owner=user, status=status)
    error = assert_error(auth_client.post(action(bot.pk, name)), 409, "conflict")
    assert status in error["message"]
    bot.refresh_from_db()
    assert bot.status == status
    assert not bot.events.exists()


def test_a_failed_bot_can_be_started_again_and_its_error_is_cleared(auth_client, user):
    bot = BotFactory(owner=user, status="error", error="exchange down", failures=5)
    body = auth_client.post(action(bot.pk, "start")).json()
    assert (body["status"], body["error"], body["failures"]) == ("starting", "", 0)


def test_a_started_bot_begins_its_strategy_afresh_but_a_resumed_one_continues(auth_client, user):
    # Stopping cancelled its orders, so a saved grid or DCA state would wait on orders that are gone.
    bot = BotFactory(owner=user, status="stopped", strategy_state={"attrs": {"waiting": True}})
    auth_client.post(action(bot.pk, "start"))
    assert Bot.objects.get(pk=bot.pk).strategy_state is None
    paused = BotFactory(owner=user, status="paused", strategy_state={"attrs": {"waiting": True}})
    auth_client.post(action(paused.pk, "resume"))
    assert Bot.objects.get(pk=paused.pk).strategy_state == {"attrs": {"waiting": True}}


def test_activation_is_idempotent_for_a_redelivered_task(user):
    bot = BotFactory(owner=user, status="starting")
    assert services.bot_activate(bot_id=bot.pk).status == "running"
    assert services.bot_activate(bot_id=bot.pk) is None
    assert BotEvent.objects.filter(bot=bot, message__startswith="Running").count() == 1


@pytest.mark.parametrize("status", ["starting", "running", "paused", "stopping", "error"])
def test_settings_change_only_when_stopped(auth_client, user, status):
    bot = BotFactory(owner=user, status=status)
    response = auth_client.patch(
        reverse("bots-api:bot-detail", args=[bot.pk]), {"symbol": "ETH/USDT"}, format="json"
    )
    assert_error(response, 409, "conflict")


@pytest.mark.parametrize("name", ["start", "pause", "resume", "stop", "events"])
def test_another_users_bot_is_404_for_every_action(auth_client, other_user, name):
    bot = BotFactory(owner=other_user, status="running")
    response = (
        auth_client.get(action(bot.pk, name)) if name == "events" else auth_client.post(action(bot.pk, name))
    )
    assert_error(response, 404, "not_found")
    bot.refresh_from_db()
    assert bot.status == "running"


def test_list_filters_by_status(auth_client, user):
    BotFactory(owner=user, status="running", name="a")
    BotFactory(owner=user, status="stopped", name="b")
    body = auth_client.get(reverse("bots-api:bot-list"), {"status": "running"}).json()
    assert [b["name"] for b in body["results"]] == ["a"]
    assert_error(
        auth_client.get(reverse("bots-api:bot-list"), {"status": "dancing"}), 400, "invalid", "status"
    )


def test_event_log_is_paged_newest_first(auth_client, user):
    bot = BotFactory(owner=user)
    for i in range(30):
        services.bot_event_add(bot=bot, kind="signal", message=f"signal {i}")
    body = auth_client.get(action(bot.pk, "events"), {"page_size": 10}).json()
    assert body["count"] == 30
    assert [e["message"] for e in body["results"]][:2] == ["signal 29", "signal 28"]
    assert body["next"]
    second = auth_client.get(body["next"]).json()
    assert second["results"][0]["message"] == "signal 19"


def test_stop_refuses_unknown_fields(auth_client, user):
    bot = BotFactory(owner=user, status="running")
    assert_error(
        auth_client.post(action(bot.pk, "stop"), {"close": True}, format="json"), 400, "invalid", "close"
    )


def test_user_code_bot_starts_and_its_activation_loads_the_strategy_in_a_sandbox(auth_client, user):
    from apps.backtests.services import strategy_create

    strategy = strategy_create(
        user=user,
        source="class S(Strategy):\n    name = 's'\n    def on_data(self, candle):\n        pass\n",
    )
    response = auth_client.post(
        reverse("bots-api:bot-list"),
        {
            "name": "mine",
            "strategy_id": strategy.pk,
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["strategy_kind"], body["strategy_id"], body["strategy_version"]) == ("user", strategy.pk, 1)
    started = auth_client.post(action(body["id"], "start"))
    assert started.status_code == 200, started.content
    assert started.json()["status"] == "starting"

    from apps.bots.services.user_code import session_pool

    pool = session_pool()
    pool.clear()
    assert services.bot_activate(bot_id=body["id"]).status == "running"
    assert len(pool) == 1  # the worker that activated it has its sandbox session ready
    services.bot_stop(bot=Bot.objects.get(pk=body["id"]))
    services.bot_finish_stop(bot_id=body["id"])
    assert len(pool) == 0  # stopping closed it


def test_a_stopped_user_code_bot_can_be_repinned_to_another_version(auth_client, user):
    from apps.backtests.services import strategy_create, strategy_update

    source = "class S(Strategy):\n    name = 's'\n    def on_data(self, candle):\n        pass\n"
    strategy = strategy_create(user=user, source=source)
    body = {
        "name": "mine",
        "strategy_id": strategy.pk,
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
    }
    bot_id = auth_client.post(reverse("bots-api:bot-list"), body, format="json").json()["id"]
    strategy_update(strategy=strategy, source=source + "# v2\n")
    detail = reverse("bots-api:bot-detail", args=[bot_id])
    assert auth_client.get(detail).json()["strategy_version"] == 1  # pinned, not following the latest
    response = auth_client.patch(detail, {"strategy_version": 2}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["strategy_version"] == 2
    assert_error(
        auth_client.patch(detail, {"strategy_version": 9}, format="json"), 400, "invalid", "strategy_version"
    )


def test_a_transition_publishes_bot_status_and_the_log_line_after_the_commit(
    user, django_capture_on_commit_callbacks
):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from apps.core.events import user_group

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(user.pk), channel)
    bot = BotFactory(owner=user, status="running")
    with django_capture_on_commit_callbacks(execute=True):
        services.bot_pause(bot=bot)
    by_type = async_to_sync(_receive_types)(layer, channel, {"bot.status", "bot.event"})
    assert by_type["bot.status"] == {"bot": bot.pk, "status": "paused", "error": ""}
    assert by_type["bot.event"]["message"] == "Paused."
    async_to_sync(layer.group_discard)(user_group(user.pk), channel)


async def _receive_types(layer, channel, wanted: set[str]) -> dict:
    """The first event of each wanted type that reaches ``channel`` (5 s at most)."""
    import asyncio

    found: dict = {}
    async with asyncio.timeout(5):
        while not wanted <= set(found):
            event = (await layer.receive(channel))["event"]
            found.setdefault(event["type"], event["data"])
    return found
