"""Notifications: the user's channels, ``notify`` for every event worth telling, and delivery.

``notify(user_id, event_kind, payload)`` is the one entry point: it writes one
``NotificationDelivery`` per enabled channel subscribed to the event and sends
each from Celery after the commit (``apps.risk.tasks.notification_deliver``).
A delivery is tried up to ``NOTIFICATION_MAX_ATTEMPTS`` times with a doubling
delay; every attempt (time, outcome, HTTP status, error) is appended to the
delivery, which the user sees in the API and on the risk page. Delivery is at
least once: a receiver deduplicates by the delivery id.

The events reach ``notify`` through the receivers in ``apps/risk/receivers.py``
(fills, bot errors and stops, risk alerts) and from ``apps/risk/killswitch.py``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from apps.core.errors import NotFound, ValidationFailed
from apps.risk.models import (
    SUBSCRIBABLE_EVENTS,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
)
from apps.risk.transports import TRANSPORTS, DeliveryError, Message

logger = logging.getLogger(__name__)

Kind = NotificationChannel.Kind
Status = NotificationDelivery.Status
SECRET_MIN_LENGTH = 16
DELIVER_TASK = "apps.risk.tasks.notification_deliver"


# ------------------------------------------------------------------- channels
def _validate(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """Clean a complete channel (after merging an update); raise ``ValidationFailed`` listing every problem."""
    errors: dict[str, list[str]] = {}
    name = (values.get("name") or "").strip()
    if not name:
        errors["name"] = ["Give the channel a name."]
    events = values.get("events") or []
    unknown = [e for e in events if e not in SUBSCRIBABLE_EVENTS]
    if unknown:
        errors["events"] = [
            f"Unknown event(s) {', '.join(map(str, unknown))}; use {', '.join(SUBSCRIBABLE_EVENTS)}."
        ]
    elif not events:
        errors["events"] = ["Choose at least one event."]
    email, url = (values.get("email") or "").strip(), (values.get("url") or "").strip()
    secret, chat_id = values.get("secret") or "", (values.get("chat_id") or "").strip()
    if kind == Kind.EMAIL:
        try:
            EmailValidator()(email)
        except DjangoValidationError:
            errors["email"] = ["An email channel needs a valid address."]
    elif kind == Kind.WEBHOOK:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors["url"] = ["A webhook needs an http(s) URL."]
        if len(secret) < SECRET_MIN_LENGTH:
            errors["secret"] = [
                f"A webhook needs a signing secret of at least {SECRET_MIN_LENGTH} characters."
            ]
    elif kind == Kind.TELEGRAM:
        if ":" not in secret or any(c.isspace() or c == "/" for c in secret):
            errors["secret"] = ['A Telegram channel needs the bot token ("123456:ABC...") from @BotFather.']
        if not chat_id or not chat_id.lstrip("-@").replace("_", "").isalnum():
            errors["chat_id"] = ["A Telegram channel needs the chat id (a number, or @channelname)."]
    else:
        errors["kind"] = [f"Use one of {', '.join(Kind.values)}."]
    if errors:
        raise ValidationFailed("Invalid notification channel.", fields=errors)
    # Fields the kind does not use are cleared, so a kind's secret never lingers elsewhere.
    return {
        "name": name,
        "events": sorted(set(events), key=SUBSCRIBABLE_EVENTS.index),
        "enabled": bool(values.get("enabled", True)),
        "email": email if kind == Kind.EMAIL else "",
        "url": url if kind == Kind.WEBHOOK else "",
        "secret": secret if kind in (Kind.WEBHOOK, Kind.TELEGRAM) else "",
        "chat_id": chat_id if kind == Kind.TELEGRAM else "",
    }


def _save(channel: NotificationChannel) -> NotificationChannel:
    try:
        with transaction.atomic():
            channel.save()
    except IntegrityError:
        raise ValidationFailed(
            "Invalid notification channel.", fields={"name": ["You already have a channel with this name."]}
        ) from None
    return channel


def notification_channel_create(*, user, kind: str, **values: Any) -> NotificationChannel:
    """A new channel for ``user``; every field is checked for its kind (all problems at once)."""
    if kind not in Kind.values:
        raise ValidationFailed(
            "Invalid notification channel.", fields={"kind": [f"Use one of {', '.join(Kind.values)}."]}
        )
    return _save(NotificationChannel(owner=user, kind=kind, **_validate(kind, values)))


def notification_channel_update(*, channel: NotificationChannel, **changes: Any) -> NotificationChannel:
    """Change some fields; an omitted secret keeps the stored one (the API never shows it back)."""
    current = {
        f: getattr(channel, f) for f in ("name", "events", "enabled", "email", "url", "secret", "chat_id")
    }
    if changes.get("secret") in (None, ""):
        changes.pop("secret", None)
    cleaned = _validate(channel.kind, {**current, **changes})
    for field, value in cleaned.items():
        setattr(channel, field, value)
    return _save(channel)


def notification_channel_delete(*, channel: NotificationChannel) -> None:
    """Delete the channel and its delivery log."""
    channel.delete()


def notification_channel_list(*, user) -> QuerySet[NotificationChannel]:
    return NotificationChannel.objects.filter(owner=user)


def notification_channel_get(*, user, pk: int | str) -> NotificationChannel:
    """One of the user's channels; another user's is a 404."""
    channel = notification_channel_list(user=user).filter(pk=pk).first() if str(pk).isdigit() else None
    if channel is None:
        raise NotFound("Notification channel not found.")
    return channel


def notification_channel_test(*, channel: NotificationChannel) -> NotificationDelivery:
    """Send a test message to the channel now (through the worker, like any delivery)."""
    payload = {
        "message": f"Test message for your {channel.get_kind_display().lower()} channel {channel.name!r}."
    }
    with transaction.atomic():
        delivery = NotificationDelivery.objects.create(
            owner_id=channel.owner_id, channel=channel, event=NotificationEvent.TEST, payload=payload
        )
        transaction.on_commit(lambda: _enqueue([delivery.pk]))
    return delivery


# ---------------------------------------------------------------- deliveries
def notification_delivery_list(
    *, user, channel: int | str | None = None, status: str | None = None, event: str | None = None
) -> QuerySet[NotificationDelivery]:
    """The user's deliveries, newest first; unknown filter values are a 400."""
    deliveries = NotificationDelivery.objects.filter(owner=user).select_related("channel")
    errors: dict[str, list[str]] = {}
    if channel not in (None, ""):
        if not str(channel).isdigit():
            errors["channel"] = ["Expected a channel id."]
        else:
            deliveries = deliveries.filter(channel_id=channel)
    if status not in (None, ""):
        if status not in Status.values:
            errors["status"] = [f"Use one of {', '.join(Status.values)}."]
        deliveries = deliveries.filter(status=status)
    if event not in (None, ""):
        if event not in NotificationEvent.values:
            errors["event"] = [f"Use one of {', '.join(NotificationEvent.values)}."]
        deliveries = deliveries.filter(event=event)
    if errors:
        raise ValidationFailed("Invalid filter.", fields=errors)
    return deliveries


def notification_delivery_get(*, user, pk: int | str) -> NotificationDelivery:
    delivery = notification_delivery_list(user=user).filter(pk=pk).first() if str(pk).isdigit() else None
    if delivery is None:
        raise NotFound("Notification delivery not found.")
    return delivery


# -------------------------------------------------------------------- notify
def notify(user_id: int, event_kind: str, payload: dict[str, Any]) -> list[int]:
    """Queue ``event_kind`` with ``payload`` (JSON-able) for each of the user's channels that want it.

    Sent after the current transaction commits (nothing for a rolled-back write);
    returns the new deliveries' ids. Never raises for a delivery problem: the
    caller's work (a fill, a bot stop, the kill switch) matters more.
    """
    if event_kind not in SUBSCRIBABLE_EVENTS:
        raise ValueError(f"unknown notification event {event_kind!r}")
    channel_ids = [pk for pk, events in _enabled_channels(user_id) if event_kind in events]
    if not channel_ids:
        return []
    deliveries = NotificationDelivery.objects.bulk_create(
        NotificationDelivery(owner_id=user_id, channel_id=pk, event=event_kind, payload=payload)
        for pk in channel_ids
    )
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: _enqueue(ids))
    return ids


CHANNELS_CACHE_SECONDS = 60


def channels_cache_key(user_id: int) -> str:
    return f"risk:channels:{user_id}"


def wants(user_id: int, event_kind: str) -> bool | None:
    """Whether an enabled channel of the user is subscribed to ``event_kind``, as cached (``None``: not cached).

    Every fill asks; most users have no channel. Answered from the cache alone, so that a
    caller can skip the savepoint ``notify`` runs in.
    """
    channels = _kept_channels(user_id)
    return None if channels is None else any(event_kind in events for _pk, events in channels)


def _kept_channels(user_id: int) -> list[tuple[int, list[str]]] | None:
    try:
        return cache.get(channels_cache_key(user_id))
    except Exception:  # the cache is down: the database answers, no notification is lost
        return None


def _enabled_channels(user_id: int) -> list[tuple[int, list[str]]]:
    """(id, events) of the user's enabled channels; cached, dropped whenever a channel changes (``tracking``)."""
    channels = _kept_channels(user_id)
    if channels is None:
        # Channels per user are few: their events are filtered here (SQLite has no JSON containment).
        channels = [
            (pk, list(events))
            for pk, events in NotificationChannel.objects.filter(owner_id=user_id, enabled=True).values_list(
                "pk", "events"
            )
        ]
        with contextlib.suppress(Exception):  # down: read again next time
            cache.set(channels_cache_key(user_id), channels, CHANNELS_CACHE_SECONDS)
    return channels


def _enqueue(ids: list[int]) -> None:
    """Send the delivery tasks by name (services never import the task module)."""
    from celery import current_app

    for delivery_id in ids:
        try:
            current_app.send_task(DELIVER_TASK, args=[delivery_id])
        except Exception:  # a broker outage must not fail the caller; the resend job picks it up
            logger.exception("notification delivery %s not queued", delivery_id)


def notifications_resend_stale(*, older_than_seconds: int = 120) -> int:
    """Queue again deliveries whose message was lost (pending with no attempt, or a retry long overdue)."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=older_than_seconds)
    stale = list(
        NotificationDelivery.objects.filter(
            status=Status.PENDING, attempts=0, created_at__lt=cutoff
        ).values_list("pk", flat=True)[:500]
    ) + list(
        NotificationDelivery.objects.filter(status=Status.RETRYING, next_attempt_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:500]
    )
    _enqueue(stale)
    return len(stale)


# ------------------------------------------------------------------ delivery
EVENT_TITLES = {
    NotificationEvent.RISK_ALERT: "Risk alert",
    NotificationEvent.FILL: "Fill",
    NotificationEvent.BOT_ERROR: "Bot error",
    NotificationEvent.BOT_STOPPED: "Bot stopped",
    NotificationEvent.KILL_SWITCH: "Kill switch",
    NotificationEvent.TEST: "Test",
}


def _describe(event: str, data: dict[str, Any]) -> tuple[str, str]:
    """A subject and a text for people (webhooks get ``data`` as well)."""
    title = EVENT_TITLES.get(event, event)
    if event == NotificationEvent.FILL:
        summary = f"{data.get('side', '')} {data.get('amount', '')} {data.get('symbol', '')} at {data.get('price', '')}"
        if data.get("bot_id"):
            summary += f" (bot #{data['bot_id']})"
    else:
        summary = str(data.get("message") or data.get("title") or "")
    subject = f"[Trading] {title}: {summary}"
    lines = [summary, ""] + [f"{key}: {value}" for key, value in sorted(data.items()) if key != "message"]
    return subject.strip()[:200], "\n".join(lines).strip()


def _retry_delay(attempts: int) -> float:
    base = settings.NOTIFICATION_RETRY_BASE_SECONDS
    return min(base * 2 ** (attempts - 1), settings.NOTIFICATION_RETRY_MAX_SECONDS)


def notification_attempt(*, delivery_id: int) -> float | None:
    """Try to deliver once; returns the seconds to wait before the next try, or ``None`` when done.

    The attempt is claimed with a conditional update (a delivery already done,
    or a duplicate task, does nothing); the send happens outside any transaction.
    """
    claimed = NotificationDelivery.objects.filter(
        pk=delivery_id, status__in=[Status.PENDING, Status.RETRYING]
    ).update(attempts=F("attempts") + 1, next_attempt_at=None)
    if claimed != 1:
        return None
    delivery = NotificationDelivery.objects.select_related("channel").get(pk=delivery_id)
    channel = delivery.channel
    subject, text = _describe(delivery.event, delivery.payload)
    message = Message(
        delivery_id=delivery.pk, event=delivery.event, subject=subject, text=text,
        data=delivery.payload, created_at=delivery.created_at.isoformat(),
    )  # fmt: skip
    started = time.monotonic()
    status_code, error, permanent = None, "", False
    if not channel.enabled:
        error, permanent = "The channel is disabled.", True
    else:
        try:
            status_code = TRANSPORTS[channel.kind].send(channel, message)
        except DeliveryError as exc:
            error, permanent, status_code = exc.message, exc.permanent, exc.status_code
        except Exception as exc:  # a bug must not leave the delivery claimed forever
            logger.exception("notification delivery %s crashed", delivery_id)
            error = f"Internal error ({type(exc).__name__})."
    now = timezone.now()
    delivery.attempts_log = [
        *delivery.attempts_log,
        {
            "at": now.isoformat(),
            "ok": not error,
            "status_code": status_code,
            "error": error,
            "duration_ms": round((time.monotonic() - started) * 1000),
        },
    ]
    delay = None
    if not error:
        delivery.status, delivery.delivered_at, delivery.last_error = Status.DELIVERED, now, ""
    elif permanent or delivery.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
        delivery.status, delivery.last_error = Status.FAILED, error
    else:
        delay = _retry_delay(delivery.attempts)
        delivery.status, delivery.last_error = Status.RETRYING, error
        delivery.next_attempt_at = now + timedelta(seconds=delay)
    delivery.save(update_fields=["status", "attempts_log", "last_error", "delivered_at", "next_attempt_at"])
    if error:
        logger.info("notification delivery %s attempt %s failed: %s", delivery_id, delivery.attempts, error)
    return delay
