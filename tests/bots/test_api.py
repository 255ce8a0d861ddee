"""Bots API: create/read/update/delete, owner scoping, validation against the strategy registry."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.bots.models import Bot
from tests.factories import BotFactory, ExchangeConnectionFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

LIST = reverse("bots-api:bot-list")


def detail(pk: int) -> str:
    return reverse("bots-api:bot-detail", args=[pk])


def payload(**overrides):
    data = {
        "name": "BTC trend",
        "strategy": "sma_crossover",
        "params": {"fast": 10, "slow": 30},
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
    }
    data.update(overrides)
    return data


def test_create_stores_a_stopped_paper_bot_with_defaulted_params(auth_client, user):
    response = auth_client.post(LIST, payload(params={"fast": "12"}), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "stopped"
    assert body["mode"] == "paper"
    assert body["connection"] is None
    # Coerced to the schema's type and completed with the strategy's defaults.
    assert body["params"]["fast"] == 12
    assert body["params"]["slow"] == 50
    assert Bot.objects.get(pk=body["id"]).owner == user


def test_list_is_paginated_and_shows_only_own_bots(auth_client, user, other_user):
    BotFactory(owner=user, name="BTC trend")
    BotFactory(owner=other_user, name="theirs")
    body = auth_client.get(LIST).json()
    assert body["count"] == 1
    assert [bot["name"] for bot in body["results"]] == ["BTC trend"]


def test_another_users_bot_is_404_for_read_update_and_delete(auth_client, other_user):
    bot = BotFactory(owner=other_user, name="BTC trend")
    assert_error(auth_client.get(detail(bot.pk)), 404, "not_found")
    assert_error(auth_client.patch(detail(bot.pk), {"name": "mine"}, format="json"), 404, "not_found")
    assert_error(auth_client.delete(detail(bot.pk)), 404, "not_found")
    bot.refresh_from_db()
    assert bot.name == "BTC trend"


def test_unknown_strategy_is_a_400_on_the_strategy_field(auth_client):
    assert_error(auth_client.post(LIST, payload(strategy="nope"), format="json"), 400, "invalid", "strategy")


def test_invalid_params_list_every_bad_parameter(auth_client):
    response = auth_client.post(LIST, payload(params={"fast": "x", "bogus": 1}), format="json")
    error = assert_error(response, 400, "invalid", "params")
    messages = " ".join(error["fields"]["params"])
    assert "fast" in messages and "bogus" in messages


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("exchange", "mtgox"),
        ("symbol", "BTCUSDT"),
        ("timeframe", "7m"),
        ("mode", "yolo"),
        ("name", ""),
        ("params", [1, 2]),
        ("connection", "abc"),
    ],
)
def test_bad_field_is_a_400_naming_the_field(auth_client, field, value):
    assert_error(auth_client.post(LIST, payload(**{field: value}), format="json"), 400, "invalid", field)


def test_missing_fields_and_non_object_body_are_400(auth_client):
    assert_error(auth_client.post(LIST, {}, format="json"), 400, "invalid", "strategy")
    assert_error(auth_client.post(LIST, [1, 2], format="json"), 400, "invalid")


def test_duplicate_name_is_a_400(auth_client):
    assert auth_client.post(LIST, payload(), format="json").status_code == 201
    assert_error(auth_client.post(LIST, payload(), format="json"), 400, "invalid", "name")


def test_live_bot_needs_an_own_trading_connection_on_the_same_exchange_and_confirmation(
    auth_client, user, other_user
):
    assert_error(auth_client.post(LIST, payload(mode="live"), format="json"), 400, "invalid", "connection")

    theirs = ExchangeConnectionFactory(user=other_user)
    response = auth_client.post(LIST, payload(mode="live", connection=theirs.pk), format="json")
    assert_error(response, 400, "invalid", "connection")

    okx = ExchangeConnectionFactory(user=user, exchange="okx")
    response = auth_client.post(LIST, payload(mode="live", connection=okx.pk), format="json")
    assert_error(response, 400, "invalid", "connection")

    untested = ExchangeConnectionFactory(user=user)
    response = auth_client.post(
        LIST, payload(mode="live", connection=untested.pk, confirm_live=True), format="json"
    )
    assert_error(response, 400, "invalid", "connection")

    mine = ExchangeConnectionFactory(user=user, can_trade_spot=True)
    response = auth_client.post(LIST, payload(mode="live", connection=mine.pk), format="json")
    assert_error(response, 400, "invalid", "confirm_live")
    assert not Bot.objects.exists()

    response = auth_client.post(
        LIST, payload(mode="live", connection=mine.pk, confirm_live=True), format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["connection"] == mine.pk


def test_patch_changes_settings_and_revalidates_params(auth_client, user):
    bot_id = BotFactory(owner=user, strategy="sma_crossover").pk
    response = auth_client.patch(detail(bot_id), {"symbol": "eth/usdt", "params": {"fast": 5}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["symbol"] == "ETH/USDT"
    assert body["params"] == {**body["params"], "fast": 5}
    assert_error(
        auth_client.patch(detail(bot_id), {"params": {"fast": 0}}, format="json"), 400, "invalid", "params"
    )
    assert_error(auth_client.patch(detail(bot_id), {"owner": 3}, format="json"), 400, "invalid", "owner")


def test_running_bot_keeps_its_trading_settings_but_can_be_renamed(auth_client, user):
    bot_id = BotFactory(owner=user, status=Bot.Status.RUNNING).pk
    assert_error(auth_client.patch(detail(bot_id), {"timeframe": "4h"}, format="json"), 409, "conflict")
    response = auth_client.patch(detail(bot_id), {"name": "renamed"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "renamed"


@pytest.mark.parametrize("status", ["running", "paused", "error"])
def test_only_a_stopped_bot_can_be_deleted(auth_client, user, status):
    bot_id = BotFactory(owner=user, status=status).pk
    assert_error(auth_client.delete(detail(bot_id)), 409, "conflict")
    assert Bot.objects.filter(pk=bot_id).exists()


def test_delete_a_stopped_bot(auth_client, user):
    bot_id = BotFactory(owner=user).pk
    assert auth_client.delete(detail(bot_id)).status_code == 204
    assert not Bot.objects.filter(pk=bot_id).exists()
    assert_error(auth_client.get(detail(bot_id)), 404, "not_found")


def test_non_numeric_id_is_404_not_500(auth_client):
    assert_error(auth_client.get(detail(1).replace("1", "abc")), 404, "not_found")


def test_anonymous_is_401(api_client):
    assert_error(api_client.get(LIST), 401, "not_authenticated")


def test_changing_strategy_without_params_starts_from_its_defaults(auth_client):
    bot_id = auth_client.post(LIST, payload(), format="json").json()["id"]
    response = auth_client.patch(detail(bot_id), {"strategy": "dca"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["strategy"] == "dca"
    assert "fast" not in body["params"] and "slow" not in body["params"]
