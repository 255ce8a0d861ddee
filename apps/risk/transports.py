"""How a notification leaves the platform: email, a signed webhook, or Telegram.

One ``Transport`` per channel kind (healthchecks' ``transports.py`` shape). ``send``
returns the HTTP status (``None`` for email) or raises ``DeliveryError``, which
says whether trying again can help (``permanent=False``: network trouble, 5xx,
429) or not (a 4xx, a refused address). Nothing here writes to the database.

Webhook signatures
------------------
Every webhook POST carries::

    X-Signature-Timestamp: 1767225600            # unix seconds when it was signed
    X-Signature: sha256=<hex>                    # HMAC-SHA256(secret, f"{timestamp}." + raw body)
    X-Notification-Event: fill                   # the event kind
    X-Notification-Delivery: 123                 # the same id on every retry: deduplicate by it

A receiver verifies with ``webhook_verify`` (or the same four lines in any
language): recompute the HMAC over the timestamp, a dot and the raw body bytes
exactly as received, compare in constant time, and refuse timestamps older than
a few minutes so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail

from apps.exchanges.crypto import mask

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
EVENT_HEADER = "X-Notification-Event"
DELIVERY_HEADER = "X-Notification-Delivery"
USER_AGENT = "trading-platform-notifications/1"
#: HTTP answers after which trying again may succeed.
RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class DeliveryError(Exception):
    """A failed send; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status_code = status_code


@dataclass(frozen=True)
class Message:
    """What to send: a subject and text for people, the event and its data for machines."""

    delivery_id: int
    event: str
    subject: str
    text: str
    data: dict[str, Any]
    created_at: str


# ------------------------------------------------------------------ signatures
def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``b"<timestamp>." + body`` with ``secret``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, tolerance_seconds: int = 300, now=None
) -> bool:
    """Whether ``signature`` is ours for this body and the timestamp is recent (the receiver's check)."""
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(age) > tolerance_seconds:
        return False
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), signature or "")


# ------------------------------------------------------------------ transports
class Transport:
    def send(self, channel, message: Message) -> int | None:
        raise NotImplementedError


class EmailTransport(Transport):
    """Through Django's email backend (SMTP in production, locmem in tests)."""

    def send(self, channel, message: Message) -> int | None:
        try:
            send_mail(message.subject, message.text, settings.DEFAULT_FROM_EMAIL, [channel.email])
        except Exception as exc:  # SMTP and backend errors: the server may take it later
            raise DeliveryError(f"Email not sent: {type(exc).__name__}: {exc}") from None
        return None


def _post_json(url: str, body: bytes, headers: dict[str, str], *, scrub: str = "") -> tuple[int, bytes]:
    """POST ``body``; returns (status, response body) for any HTTP answer, raises DeliveryError otherwise."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryError("Only http(s) URLs are called.", permanent=True)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 - checked above
    timeout = settings.NOTIFICATION_HTTP_TIMEOUT_SECONDS
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked above
            return response.status, response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(64 * 1024)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        text = str(getattr(exc, "reason", None) or exc)
        if scrub:
            text = text.replace(scrub, mask(scrub))
        raise DeliveryError(f"Could not connect: {text}") from None


def _check_public(url: str) -> None:
    """Refuse loopback/private targets unless allowed (no requests into our own network)."""
    if settings.NOTIFICATION_ALLOW_PRIVATE_WEBHOOKS:
        return
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise DeliveryError(f"Could not resolve {host}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise DeliveryError(f"{host} resolves to a non-public address; refused.", permanent=True)


class WebhookTransport(Transport):
    """A JSON POST signed with the channel's secret (see the module docstring)."""

    def send(self, channel, message: Message) -> int | None:
        _check_public(channel.url)
        body = json.dumps(
            {"id": message.delivery_id, "event": message.event, "created_at": message.created_at,
             "subject": message.subject, "data": message.data},
            separators=(",", ":"), sort_keys=True,
        ).encode()  # fmt: skip
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(channel.secret, timestamp, body),
            EVENT_HEADER: message.event,
            DELIVERY_HEADER: str(message.delivery_id),
        }
        status, _ = _post_json(channel.url, body, headers)
        if 200 <= status < 300:
            return status
        raise DeliveryError(
            f"The webhook answered HTTP {status}.",
            permanent=status not in RETRYABLE_STATUSES,
            status_code=status,
        )


class TelegramTransport(Transport):
    """``sendMessage`` of the Telegram Bot API at ``TELEGRAM_API_BASE_URL`` (the token is in the URL: never logged)."""

    def send(self, channel, message: Message) -> int | None:
        base = settings.TELEGRAM_API_BASE_URL.rstrip("/")
        url = f"{base}/bot{channel.secret}/sendMessage"
        body = json.dumps(
            {"chat_id": channel.chat_id, "text": f"{message.subject}\n\n{message.text}"[:4096],
             "disable_web_page_preview": True}
        ).encode()  # fmt: skip
        status, raw = _post_json(url, body, {"Content-Type": "application/json"}, scrub=channel.secret)
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            answer = {}
        if 200 <= status < 300 and answer.get("ok", True):
            return status
        description = str(answer.get("description") or f"HTTP {status}").replace(channel.secret, "")
        raise DeliveryError(
            f"Telegram refused the message: {description}",
            permanent=status not in RETRYABLE_STATUSES,
            status_code=status,
        )


TRANSPORTS: dict[str, Transport] = {
    "email": EmailTransport(),
    "webhook": WebhookTransport(),
    "telegram": TelegramTransport(),
}
