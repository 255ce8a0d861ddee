"""Notifications: channels, ``notify`` from the events, delivery by email, signed webhook and Telegram, retries."""

from __future__ import annotations

import json
import time

import pytest
from django.core import mail
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext

from apps.bots.services import bot_error, bot_event_add
from apps.risk import notifications
from apps.risk.models import NotificationChannel, NotificationDelivery
from apps.risk.signals import risk_alert_raised
from apps.risk.tasks import notification_deliver
from apps.risk.transports import webhook_signature, webhook_verify
from tests.factories import BotFactory, FillFactory, OrderFactory
from tests.risk.receiver import Receiver

pytestmark = pytest.mark.django_db

SECRET = "whsec-0123456789abcdef"
TOKEN = "123456:AAF-telegram-token-secret"


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.NOTIFICATION_RETRY_BASE_SECONDS = 0
    settings.NOTIFICATION_MAX_ATTEMPTS = 3
    settings.NOTIFICATION_HTTP_TIMEOUT_SECONDS = 5
    settings.NOTIFICATION_ALLOW_PRIVATE_WEBHOOKS = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


def webhook(user, url, events=("fill",), **kw):
    return notifications.notification_channel_create(
        user=user,
        kind="webhook",
        name=kw.pop("name", "hook"),
        events=list(events),
        url=url,
        secret=SECRET,
        **kw,
    )


def deliver(delivery_id: int) -> NotificationDelivery:
    """Attempt until done, as the task's retries would (the backoff is 0 here)."""
    while notifications.notification_attempt(delivery_id=delivery_id) is not None:
        pass
    return NotificationDelivery.objects.get(pk=delivery_id)


def test_webhook_receives_the_event_with_a_valid_signature(
    user, receiver, django_capture_on_commit_callbacks
):
    channel = webhook(user, receiver.url + "/hooks/trading")
    [delivery_id] = notifications.notify(
        user.pk, "fill", {"symbol": "BTC/USDT", "side": "buy", "amount": "0.01"}
    )
    delivery = deliver(delivery_id)

    assert delivery.status == "delivered" and delivery.attempts == 1
    [request] = receiver.requests
    assert request.path == "/hooks/trading"
    timestamp, signature = request.headers["X-Signature-Timestamp"], request.headers["X-Signature"]
    assert webhook_verify(SECRET, timestamp, request.body, signature)
    assert signature == webhook_signature(SECRET, timestamp, request.body)
    assert abs(int(timestamp) - time.time()) < 60
    assert not webhook_verify("another-secret-xxxxxx", timestamp, request.body, signature)
    assert not webhook_verify(SECRET, timestamp, request.body + b" ", signature)  # body changed
    assert not webhook_verify(SECRET, str(int(timestamp) - 3600), request.body, signature)  # replayed later
    body = request.json()
    assert body["event"] == "fill" and body["id"] == delivery.pk
    assert body["data"] == {"symbol": "BTC/USDT", "side": "buy", "amount": "0.01"}
    assert request.headers["X-Notification-Delivery"] == str(delivery.pk)
    assert delivery.attempts_log[0]["ok"] is True and delivery.attempts_log[0]["status_code"] == 200
    assert channel.deliveries.count() == 1


def test_webhook_failures_are_retried_with_backoff_then_delivered(user, receiver):
    webhook(user, receiver.url)
    receiver.answers = [(503, {}), (500, {})]
    [delivery_id] = notifications.notify(user.pk, "fill", {"symbol": "BTC/USDT"})
    # Each failed attempt asks for a delay (doubling from the base) and is logged.
    assert notifications.notification_attempt(delivery_id=delivery_id) == 0
    delivery = NotificationDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "retrying" and "HTTP 503" in delivery.last_error
    delivery = deliver(delivery_id)
    assert delivery.status == "delivered" and delivery.attempts == 3
    assert [a["status_code"] for a in delivery.attempts_log] == [503, 500, 200]
    assert [a["ok"] for a in delivery.attempts_log] == [False, False, True]
    assert len(receiver.requests) == 3
    # Every retry is the same delivery: the id header lets the receiver deduplicate.
    assert {r.headers["X-Notification-Delivery"] for r in receiver.requests} == {str(delivery_id)}


def test_retry_delay_doubles_and_is_capped(settings):
    settings.NOTIFICATION_RETRY_BASE_SECONDS = 30
    settings.NOTIFICATION_RETRY_MAX_SECONDS = 100
    assert [notifications._retry_delay(n) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


def test_the_celery_task_retries_until_delivered(user, receiver):
    webhook(user, receiver.url)
    receiver.answers = [(502, {})]
    [delivery_id] = notifications.notify(user.pk, "fill", {"symbol": "BTC/USDT"})
    notification_deliver.apply(args=[delivery_id])  # eager: the retry runs at once (backoff 0)
    delivery = NotificationDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "delivered" and delivery.attempts == 2


def test_a_4xx_answer_is_permanent_and_a_dead_receiver_gives_up_after_max_attempts(user, receiver):
    from tests.support.servers import free_port

    webhook(user, receiver.url, name="refusing")
    receiver.answers = [(410, {"gone": True})]
    webhook(user, f"http://127.0.0.1:{free_port()}/nobody", name="dead")
    gone_id, dead_id = notifications.notify(user.pk, "fill", {"symbol": "BTC/USDT"})
    gone = deliver(gone_id)
    assert gone.status == "failed" and gone.attempts == 1 and "HTTP 410" in gone.last_error
    dead = deliver(dead_id)
    assert dead.status == "failed" and dead.attempts == 3  # NOTIFICATION_MAX_ATTEMPTS
    assert all("Could not connect" in a["error"] for a in dead.attempts_log)


def test_private_webhook_targets_are_refused_where_not_allowed(user, receiver, settings):
    settings.NOTIFICATION_ALLOW_PRIVATE_WEBHOOKS = False
    webhook(user, receiver.url)
    [delivery_id] = notifications.notify(user.pk, "fill", {"symbol": "BTC/USDT"})
    delivery = deliver(delivery_id)
    assert delivery.status == "failed" and "non-public" in delivery.last_error
    assert receiver.requests == []


def test_telegram_message_goes_to_the_configured_api(user, receiver, settings):
    settings.TELEGRAM_API_BASE_URL = receiver.url
    notifications.notification_channel_create(
        user=user, kind="telegram", name="tg", events=["bot_error"], secret=TOKEN, chat_id="-100123"
    )
    [delivery_id] = notifications.notify(user.pk, "bot_error", {"bot": "dca", "message": "exchange refused"})
    assert deliver(delivery_id).status == "delivered"
    [request] = receiver.requests
    assert request.path == f"/bot{TOKEN}/sendMessage"
    body = request.json()
    assert body["chat_id"] == "-100123" and "exchange refused" in body["text"]


def test_telegram_refusal_is_logged_without_the_token(user, receiver, settings):
    settings.TELEGRAM_API_BASE_URL = receiver.url
    receiver.answers = [(401, {"ok": False, "description": "Unauthorized"})]
    notifications.notification_channel_create(
        user=user, kind="telegram", name="tg", events=["bot_error"], secret=TOKEN, chat_id="42"
    )
    [delivery_id] = notifications.notify(user.pk, "bot_error", {"message": "x"})
    delivery = deliver(delivery_id)
    assert delivery.status == "failed" and "Unauthorized" in delivery.last_error
    assert TOKEN not in json.dumps(delivery.attempts_log) and TOKEN not in delivery.last_error


def test_email_goes_through_the_django_backend(user):
    notifications.notification_channel_create(
        user=user, kind="email", name="mail", events=["kill_switch"], email="trader@example.com"
    )
    [delivery_id] = notifications.notify(user.pk, "kill_switch", {"message": "Kill switch engaged."})
    assert deliver(delivery_id).status == "delivered"
    [message] = mail.outbox
    assert message.to == ["trader@example.com"] and "Kill switch" in message.subject
    assert "Kill switch engaged." in message.body


def test_only_enabled_channels_subscribed_to_the_event_get_it(user, other_user, receiver):
    webhook(user, receiver.url, events=["fill"], name="fills")
    webhook(user, receiver.url, events=["risk_alert"], name="alerts")
    webhook(user, receiver.url, events=["fill"], name="off", enabled=False)
    webhook(other_user, receiver.url, events=["fill"], name="theirs")
    ids = notifications.notify(user.pk, "fill", {"symbol": "BTC/USDT"})
    assert [NotificationDelivery.objects.get(pk=i).channel.name for i in ids] == ["fills"]
    with pytest.raises(ValueError):
        notifications.notify(user.pk, "nonsense", {})


def test_secrets_are_encrypted_at_rest(user, receiver):
    channel = webhook(user, receiver.url)
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM risk_notificationchannel WHERE id = %s", [channel.pk])
        stored = cursor.fetchone()[0]
    assert SECRET not in stored and stored
    assert NotificationChannel.objects.get(pk=channel.pk).secret == SECRET
    assert channel.masked_secret.endswith(SECRET[-4:]) and SECRET not in channel.masked_secret


def test_channel_rules_are_checked_per_kind_all_at_once(user):
    from apps.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as err:
        notifications.notification_channel_create(
            user=user, kind="webhook", name="", events=["nope"], url="ftp://x", secret="short"
        )
    assert set(err.value.fields) == {"name", "events", "url", "secret"}
    with pytest.raises(ValidationFailed) as err:
        notifications.notification_channel_create(user=user, kind="telegram", name="t", events=["fill"])
    assert set(err.value.fields) == {"secret", "chat_id"}
    with pytest.raises(ValidationFailed) as err:
        notifications.notification_channel_create(user=user, kind="email", name="e", events=[], email="nope")
    assert set(err.value.fields) == {"events", "email"}


# ------------------------------------------------------------------ the hooks
def test_a_recorded_fill_notifies_its_owner(user, receiver, django_capture_on_commit_callbacks):
    webhook(user, receiver.url, events=["fill"])
    order = OrderFactory(owner=user)
    FillFactory(order=order)
    [delivery] = NotificationDelivery.objects.filter(owner=user)
    assert delivery.event == "fill" and delivery.payload["order_id"] == order.pk
    assert delivery.payload["amount"] == "0.005" and delivery.payload["symbol"] == "BTC/USDT"


def test_every_change_of_a_channel_is_seen_by_the_next_fill_though_the_channels_are_cached(user, receiver):
    """notify keeps the user's channels in the cache (every fill asks); a change drops them at once."""

    def fill_notifies() -> tuple[bool, bool, bool]:
        """(a delivery was queued, the channels were read, a savepoint was opened for the notification)."""
        before = NotificationDelivery.objects.filter(owner=user).count()
        with CaptureQueriesContext(db_connection) as queries:
            FillFactory(order=OrderFactory(owner=user))
        sql = [q["sql"] for q in queries.captured_queries]
        after = sql[
            next(i for i, text in enumerate(sql) if text.startswith('INSERT INTO "orders_fill"')) + 1 :
        ]
        return (
            NotificationDelivery.objects.filter(owner=user).count() > before,
            any("risk_notificationchannel" in text for text in after),
            any("SAVEPOINT" in text for text in after),
        )

    assert fill_notifies() == (False, True, True)  # no channel: read once...
    assert fill_notifies() == (False, False, False)  # ...then known: no query, no savepoint
    channel = webhook(user, receiver.url, events=["fill"])
    assert fill_notifies() == (True, True, True)
    assert fill_notifies() == (True, False, True)
    notifications.notification_channel_update(channel=channel, events=["bot_error"])
    assert fill_notifies() == (False, True, True)
    notifications.notification_channel_update(channel=channel, events=["fill"])
    assert fill_notifies()[:2] == (True, True)
    notifications.notification_channel_update(channel=channel, enabled=False)
    assert fill_notifies()[:2] == (False, True)
    notifications.notification_channel_update(channel=channel, enabled=True)
    assert fill_notifies()[:2] == (True, True)
    notifications.notification_channel_delete(channel=channel)
    assert fill_notifies()[:2] == (False, True)


def test_a_fill_is_notified_while_the_cache_is_down(user, receiver, monkeypatch):
    webhook(user, receiver.url, events=["fill"])

    class Down:
        def get(self, *args, **kwargs):
            raise ConnectionError("the cache is down")

        set = get

    monkeypatch.setattr(notifications, "cache", Down())
    FillFactory(order=OrderFactory(owner=user))
    assert NotificationDelivery.objects.filter(owner=user, event="fill").count() == 1


def test_bot_errors_and_stops_notify_but_retried_tick_failures_do_not(user, receiver):
    webhook(user, receiver.url, events=["bot_error", "bot_stopped"])
    bot = BotFactory(owner=user, status="running")
    bot_event_add(bot=bot, kind="error", message="Tick failed; retrying", data={"retry_in": 5})
    assert not NotificationDelivery.objects.exists()
    bot_error(bot_id=bot.pk, reason="exchange refused the key")
    bot_event_add(bot=bot, kind="lifecycle", message="Stopped.", data={"from": "stopping", "to": "stopped"})
    deliveries = NotificationDelivery.objects.order_by("pk")
    assert [d.event for d in deliveries] == ["bot_error", "bot_stopped"]
    assert deliveries[0].payload["message"] == "exchange refused the key"
    assert deliveries[0].payload["bot_id"] == bot.pk


def test_risk_alert_signal_notifies(user, receiver):
    webhook(user, receiver.url, events=["risk_alert"])
    risk_alert_raised.send(sender=None, user_id=user.pk, payload={"message": "Daily loss limit reached"})
    [delivery] = NotificationDelivery.objects.all()
    assert delivery.event == "risk_alert" and delivery.payload["message"] == "Daily loss limit reached"


# ------------------------------------------------------------- a real worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_delivers_a_signed_webhook(celery_worker, user, receiver):
    webhook(user, receiver.url, events=["fill"])
    [delivery_id] = notifications.notify(user.pk, "fill", {"symbol": "ETH/USDT"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        delivery = NotificationDelivery.objects.get(pk=delivery_id)
        if delivery.status == "delivered":
            break
        time.sleep(0.2)
    assert delivery.status == "delivered", (delivery.status, delivery.attempts_log)
    [request] = receiver.requests
    assert webhook_verify(
        SECRET, request.headers["X-Signature-Timestamp"], request.body, request.headers["X-Signature"]
    )
