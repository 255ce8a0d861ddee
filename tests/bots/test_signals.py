"""Signal bots: webhook alerts become orders on the bot's paper account, replay-safe, throttled,
logged, owner-scoped, with the secret token shown once and masked everywhere else.

Orders go through the real ``apps.orders.services.order_place`` and the paper exchange,
priced (offline) from the stored candles of ``tests.bots.support``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.bots import services
from apps.bots.models import Bot, BotEvent, BotSignal
from apps.bots.services.signals import signal_client_order_id
from apps.exchanges.models import PaperBalance, PaperOrder
from apps.orders.models import Order
from tests.bots.support import store_candles
from tests.factories import BotFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

CANDLE = 1_700_002_800_000
# Half the equity: offline the replay feed moves the price between the sizing and the
# fill, and an all-in buy can then miss its own fee by a fraction of a cent.
HALF = {"type": "percent_equity", "value": 0.5}


def webhook_bot(owner, **overrides) -> tuple[Bot, str]:
    values = {"owner": owner, "source": "webhook", "strategy": "", "params": {}, "status": "running"}
    values["sizing"] = HALF
    bot = BotFactory(timeframe="1h", **{**values, **overrides})
    return bot, services.bot_webhook_rotate(bot=bot)


def url(token: str) -> str:
    return reverse("signals-api:receive", args=[token])


def now_iso() -> str:
    return timezone.now().isoformat()


@pytest.fixture
def send(api_client, django_capture_on_commit_callbacks):
    """POST a signal as TradingView would (no session); orders are sent after the commit."""

    def post(token: str, body):
        with django_capture_on_commit_callbacks(execute=True):
            return api_client.post(url(token), body, format="json")

    return post


@pytest.fixture
def market():
    store_candles(last_open_ms=CANDLE)


def base_balance(bot: Bot) -> Decimal:
    balance = PaperBalance.objects.filter(account__bot_id=bot.pk, asset="BTC").first()
    return balance.free + balance.used if balance else Decimal(0)


def test_enter_long_places_a_market_buy_on_the_bots_paper_account(user, send, market):
    bot, token = webhook_bot(user)
    response = send(token, {"action": "enter_long", "signal_id": "tv-1", "timestamp": now_iso()})
    assert response.status_code == 200, response.content
    body = response.json()
    cid = signal_client_order_id(bot.pk, "id:tv-1", 0)
    assert (body["outcome"], body["action"], body["client_order_ids"]) == ("accepted", "enter_long", [cid])
    order = Order.objects.get(client_order_id=cid)
    assert order.reason == ""
    assert (order.bot_id, order.side, order.type, order.status) == (bot.pk, "buy", "market", "filled")
    assert body["order_ids"] == [order.pk]
    # At the paper exchange, on the bot's own account, under the same client order id.
    paper = PaperOrder.objects.get(client_order_id=cid)
    assert paper.account.bot_id == bot.pk and paper.status == "filled"
    assert base_balance(bot) == order.filled
    signal = BotSignal.objects.get(bot=bot)
    assert (signal.outcome, signal.signal_id, signal.order_ids) == ("accepted", "tv-1", [order.pk])
    kinds = list(
        bot.events.filter(kind__in=["signal", "order"]).order_by("id").values_list("kind", flat=True)
    )
    assert kinds == ["order", "signal"]


def test_an_explicit_size_and_price_make_a_limit_order_of_that_size(user, send, market):
    _bot, token = webhook_bot(user)
    body = {"action": "enter_long", "size": "2", "price": "5", "signal_id": "lim-1"}
    response = send(token, body)
    assert response.status_code == 200, response.content
    order = Order.objects.get(client_order_id=response.json()["client_order_ids"][0])
    assert (order.type, order.amount, order.price) == ("limit", Decimal("2"), Decimal("5"))


def test_exit_closes_the_position(user, send, market):
    bot, token = webhook_bot(user)
    assert send(token, {"action": "enter_long", "signal_id": "in"}).status_code == 200
    held = base_balance(bot)
    assert held > 0
    response = send(token, {"action": "exit", "signal_id": "out"})
    assert response.status_code == 200, response.content
    close = Order.objects.get(client_order_id=signal_client_order_id(bot.pk, "id:out", 0))
    assert (close.side, close.type, close.reduce_only, close.amount) == ("sell", "market", True, held)
    assert close.status == "filled"
    assert base_balance(bot) == 0
    # Flat now: another exit is accepted and does nothing, saying so.
    again = send(token, {"action": "exit_long", "signal_id": "out-2"}).json()
    assert (again["outcome"], again["order_ids"]) == ("accepted", [])
    assert "flat" in again["reason"]


def test_entries_carry_the_bots_default_exits_and_an_exit_cancels_them_first(user, send, market):
    bot, token = webhook_bot(user, stop_loss=0.5, take_profit=0.5)
    entry_id = send(token, {"action": "enter_long", "signal_id": "in"}).json()["order_ids"][0]
    legs = Order.objects.filter(parent_id=entry_id)
    assert {leg.role for leg in legs} == {Order.Role.STOP_LOSS, Order.Role.TAKE_PROFIT}
    held = base_balance(bot)
    response = send(token, {"action": "exit", "signal_id": "out"})
    assert response.status_code == 200, response.content
    assert not Order.objects.filter(parent_id=entry_id).open().exists()
    close = Order.objects.get(pk=response.json()["order_ids"][0])
    assert (close.amount, close.status) == (held, "filled")
    assert base_balance(bot) == 0


def test_a_repeated_signal_id_is_refused_as_a_duplicate_and_logged(user, send, market):
    bot, token = webhook_bot(user)
    body = {"action": "enter_long", "signal_id": "tv-7"}
    assert send(token, body).status_code == 200
    error = assert_error(send(token, body), 409, "duplicate_signal", fields="signal_id")
    assert "Already received" in error["message"]
    assert Order.objects.filter(bot=bot).count() == 1
    outcomes = list(BotSignal.objects.filter(bot=bot).order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["accepted", "duplicate"]


def test_a_redelivered_body_without_signal_id_is_a_duplicate_by_its_timestamp(user, send, market):
    bot, token = webhook_bot(user)
    body = {"action": "enter_long", "timestamp": now_iso()}
    assert send(token, body).status_code == 200
    assert_error(send(token, body), 409, "duplicate_signal", fields="timestamp")
    assert Order.objects.filter(bot=bot).count() == 1


def test_a_redelivery_places_no_second_order_even_if_the_signal_log_was_lost(user, send, market):
    bot, token = webhook_bot(user)
    # With a size, so that the second delivery does not stop at "already long".
    body = {"action": "enter_long", "size": "2", "signal_id": "tv-9"}
    first = send(token, body).json()
    # As if the first delivery's log line had never been written: the client order id,
    # derived from the signal, still finds the order instead of sending another.
    BotSignal.objects.filter(bot=bot).delete()
    second = send(token, body).json()
    assert second["order_ids"] == first["order_ids"]
    assert PaperOrder.objects.filter(client_order_id=first["client_order_ids"][0]).count() == 1


@pytest.mark.parametrize("age", [timedelta(minutes=-6), timedelta(minutes=6), timedelta(days=30)])
def test_a_timestamp_outside_the_window_is_refused_and_logged(user, send, market, age):
    bot, token = webhook_bot(user)
    stamp = (timezone.now() - age).isoformat()
    assert_error(send(token, {"action": "enter_long", "timestamp": stamp}), 400, "stale_signal", "timestamp")
    signal = BotSignal.objects.get(bot=bot)
    assert signal.outcome == "rejected" and "replay" in signal.reason
    assert not Order.objects.filter(bot=bot).exists()


def test_unix_timestamps_in_seconds_and_milliseconds_are_understood(user, send, market):
    _bot, token = webhook_bot(user)
    now = timezone.now().timestamp()
    assert send(token, {"action": "exit", "timestamp": int(now)}).status_code == 200
    assert send(token, {"action": "exit_long", "timestamp": int(now * 1000)}).status_code == 200


def test_a_bad_body_lists_every_bad_field_and_is_logged(user, send):
    bot, token = webhook_bot(user)
    response = send(token, {"action": "buy", "size": "-1", "sise": 1, "timestamp": "yesterday"})
    assert_error(response, 400, "invalid", fields=["action", "size", "sise", "timestamp"])
    assert_error(send(token, {"action": "exit"}), 400, "invalid", fields=["signal_id", "timestamp"])
    assert_error(send(token, ["enter_long"]), 400, "invalid")
    signals = BotSignal.objects.filter(bot=bot)
    assert signals.count() == 3 and {s.outcome for s in signals} == {"rejected"}
    assert "Invalid body" in signals.first().reason


def test_a_body_that_is_not_json_is_refused_and_logged(user, api_client):
    bot, token = webhook_bot(user)
    response = api_client.post(url(token), "enter_long now", content_type="text/plain")
    assert_error(response, 415)
    response = api_client.post(url(token), "{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")
    reasons = list(BotSignal.objects.filter(bot=bot).values_list("outcome", "reason"))
    assert len(reasons) == 2 and all(outcome == "rejected" for outcome, _ in reasons)


def test_a_wrong_token_is_404_and_leaves_no_trace_in_the_logs(api_client, user, caplog):
    _bot, token = webhook_bot(user)
    wrong = token[:-4] + "abcd"
    with caplog.at_level(logging.DEBUG):
        response = api_client.post(url(wrong), {"action": "exit", "signal_id": "x"}, format="json")
    assert_error(response, 404, "not_found")
    assert not BotSignal.objects.exists()
    assert wrong not in caplog.text and token not in caplog.text
    assert "signals/" in caplog.text  # logged, masked


@pytest.mark.parametrize("status", ["stopped", "paused", "starting", "stopping", "error"])
def test_a_bot_that_is_not_running_refuses_with_the_reason(user, send, status):
    bot, token = webhook_bot(user, status=status)
    error = assert_error(send(token, {"action": "enter_long", "signal_id": "s"}), 409, "bot_not_running")
    assert status in error["message"]
    signal = BotSignal.objects.get(bot=bot)
    assert signal.outcome == "rejected" and status in signal.reason
    assert bot.events.filter(kind="error", message__contains="rejected").exists()
    assert not Order.objects.filter(bot=bot).exists()


def test_enter_short_is_refused_on_a_long_only_bot(user, send, market):
    bot, token = webhook_bot(user)
    assert_error(send(token, {"action": "enter_short", "signal_id": "s"}), 409, "unsupported_action")
    assert BotSignal.objects.get(bot=bot).outcome == "rejected"


def test_an_order_the_exchange_refuses_is_logged_with_its_reason(user, send, market):
    bot, token = webhook_bot(user)
    response = send(token, {"action": "enter_long", "size": "1000000", "signal_id": "huge"})
    assert response.status_code == 400, response.content
    signal = BotSignal.objects.get(bot=bot)
    assert signal.outcome == "rejected" and signal.reason
    assert not Order.objects.filter(bot=bot).exists()


def test_the_rate_limit_is_per_token_and_answers_429_with_the_error_body(
    user, send, settings, throttle_clock
):
    settings.SIGNAL_THROTTLE_RATE = "2/minute"
    _bot, token = webhook_bot(user, status="stopped")
    _other, other_token = webhook_bot(user, status="stopped")
    for n in range(2):
        response = send(token, {"action": "exit", "signal_id": f"n{n}"})
        assert response.status_code == 409
        assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("2", str(1 - n))
    response = send(token, {"action": "exit", "signal_id": "n3"})
    error = assert_error(response, 429, "throttled")
    assert error["fields"]["retry_after_seconds"] > 0
    assert int(response["Retry-After"]) == error["fields"]["retry_after_seconds"]
    assert send(other_token, {"action": "exit", "signal_id": "n1"}).status_code == 409


def test_the_loop_never_ticks_a_webhook_bot(user, monkeypatch):
    sent = []
    monkeypatch.setattr("celery.current_app.send_task", lambda name, args, queue: sent.append(args))
    bot, _token = webhook_bot(user)
    assert services.bots_enqueue_due(now_ms=CANDLE + 3_600_000 + 1) == 0
    assert not services.bot_tick_claim(bot_id=bot.pk, candle_ms=CANDLE)


# ------------------------------------------------------------ the owner's side
def test_signal_log_is_paged_newest_first_and_owner_scoped(auth_client, user, other_user, send):
    bot, token = webhook_bot(user, status="stopped")
    for n in range(3):
        send(token, {"action": "exit", "signal_id": f"s{n}"})
    route = reverse("bots-api:bot-signals", args=[bot.pk])
    body = auth_client.get(route, {"page_size": 2}).json()
    assert body["count"] == 3
    assert [s["signal_id"] for s in body["results"]] == ["s2", "s1"]
    assert body["results"][0]["outcome"] == "rejected"
    theirs, _ = webhook_bot(other_user)
    assert_error(auth_client.get(reverse("bots-api:bot-signals", args=[theirs.pk])), 404, "not_found")


def test_creating_a_signal_bot_shows_its_url_once_then_masked(auth_client, user, send, market):
    data = {"name": "TV", "source": "webhook", "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
    response = auth_client.post(reverse("bots-api:bot-list"), data, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["source"], created["strategy"], created["webhook"]["masked"]) == ("webhook", "", False)
    full = created["webhook"]["url"]
    assert full.startswith("http://testserver/api/v1/signals/")
    token = full.rstrip("/").rsplit("/", 1)[1]
    assert len(token) >= 40
    bot = Bot.objects.get(pk=created["id"])
    # Only the hash is stored.
    assert token not in str(list(Bot.objects.filter(pk=bot.pk).values())) and bot.webhook.token_hash != token
    shown = auth_client.get(reverse("bots-api:bot-detail", args=[bot.pk])).json()["webhook"]
    assert shown["masked"] is True and token not in shown["url"] and token[:6] in shown["url"]
    listed = auth_client.get(reverse("bots-api:bot-list")).json()["results"][0]["webhook"]
    assert token not in str(listed)
    # The URL works once the bot runs; nothing the owner reads afterwards carries the token.
    Bot.objects.filter(pk=bot.pk).update(status="running")
    assert send(token, {"action": "enter_long", "signal_id": "a"}).status_code == 200
    signals = auth_client.get(reverse("bots-api:bot-signals", args=[bot.pk])).content.decode()
    events = auth_client.get(reverse("bots-api:bot-events", args=[bot.pk])).content.decode()
    assert token not in signals and token not in events


def test_a_signal_bot_takes_no_strategy(auth_client):
    data = {"name": "TV", "source": "webhook", "strategy": "sma_crossover", "params": {"fast": 3}}
    data.update(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    response = auth_client.post(reverse("bots-api:bot-list"), data, format="json")
    assert_error(response, 400, "invalid", fields=["strategy", "params"])


def test_rotating_replaces_the_url_and_only_the_owner_can(auth_client, user, other_user, send):
    bot, old = webhook_bot(user, status="stopped")
    response = auth_client.post(reverse("bots-api:bot-webhook-rotate", args=[bot.pk]))
    assert response.status_code == 200, response.content
    body = response.json()
    new = body["url"].rstrip("/").rsplit("/", 1)[1]
    assert new != old and body["token_hint"] == new[:6]
    assert body["example_alert"]["action"] == "enter_long"
    assert_error(send(old, {"action": "exit", "signal_id": "x"}), 404, "not_found")
    assert_error(send(new, {"action": "exit", "signal_id": "x"}), 409, "bot_not_running")
    assert bot.events.filter(message__contains="rotated").exists()
    assert not BotEvent.objects.filter(message__contains=new).exists()
    theirs, _ = webhook_bot(other_user)
    assert_error(auth_client.post(reverse("bots-api:bot-webhook-rotate", args=[theirs.pk])), 404)
    strategy_bot = BotFactory(owner=user)
    assert_error(auth_client.post(reverse("bots-api:bot-webhook-rotate", args=[strategy_bot.pk])), 409)


def test_the_admin_lists_signals_and_never_shows_the_token(client, user, send):
    from tests.factories import UserFactory

    bot, token = webhook_bot(user, status="stopped")
    send(token, {"action": "exit", "signal_id": "adm"})
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    pages = [
        reverse("admin:bots_botsignal_changelist"),
        reverse("admin:bots_botsignal_change", args=[BotSignal.objects.get(bot=bot).pk]),
        reverse("admin:bots_bot_change", args=[bot.pk]),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200
        assert token not in response.content.decode()
    assert "adm" in client.get(pages[0]).content.decode()


def test_the_schema_documents_the_webhook_request_response_and_errors():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/signals/{token}/"]["post"]
    assert operation["security"] == [{}] or "security" not in operation or operation["security"] == []
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert request.endswith("/SignalInputRequest")
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/BotSignal"
    )
    for status in ("400", "404", "409", "429"):
        assert operation["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorBody"
        )
    assert "/api/v1/bots/{id}/signals/" in schema["paths"]
    assert "/api/v1/bots/{id}/webhook/rotate/" in schema["paths"]


def test_a_timestamp_is_compared_in_utc(user, send, market):
    _bot, token = webhook_bot(user)
    local = datetime.now(UTC).astimezone().replace(microsecond=0).isoformat()
    assert send(token, {"action": "exit", "timestamp": local}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_same_signal_delivered_concurrently_places_one_order(user, market):
    import threading

    from django.db import connection
    from rest_framework.test import APIClient

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL for concurrent writers (DATABASE_URL)")
    bot, token = webhook_bot(user)
    barrier = threading.Barrier(4)
    answers: list[int] = []

    def deliver() -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            body = {"action": "enter_long", "size": "2", "signal_id": "race"}
            answers.append(APIClient().post(url(token), body, format="json").status_code)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 409, 409, 409]
    assert Order.objects.filter(bot=bot, role=Order.Role.ENTRY).count() == 1
    outcomes = sorted(BotSignal.objects.filter(bot=bot).values_list("outcome", flat=True))
    assert outcomes == ["accepted", "duplicate", "duplicate", "duplicate"]
