"""Signal bots: webhook alerts (TradingView style) turned into the bot's orders.

A webhook bot (``Bot.source == "webhook"``) has no strategy and is never ticked
by the loop; its decisions arrive as signals on a secret URL. The secret is a
random token of which only a hash is kept (``BotWebhook``): the full URL is
shown once, by ``bot_webhook_rotate``, which also replaces a leaked one.

``signal_receive`` handles one delivery under the bot's row lock (the lock the
lifecycle takes, so a stop never interleaves with a signal placing orders):

- replay safety: a signal is identified by its ``signal_id``, else by a hash of
  its body (which must then carry a ``timestamp``); a key seen before for the
  bot is a duplicate, and a timestamp further than ``SIGNAL_MAX_SKEW_SECONDS``
  from now is refused;
- only a running bot acts; anything else is refused with the reason;
- the action becomes decisions through the tick's ``GatewayBroker`` (the
  bot's sizing and default stop-loss/take-profit), placed through
  ``bot_place_order`` with client order ids derived from the signal's key, so
  a redelivered webhook can never place an order twice.

Every delivery that names a valid token is logged as a ``BotSignal`` (with
what it did) and a ``BotEvent``, refused ones included; a refusal is raised as
``SignalRefused`` after that log is committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.backtests.engine.candles import Candles
from apps.bots.models import Bot, BotSignal, BotWebhook
from apps.bots.services.log import bot_event_add
from apps.core.errors import Conflict, DomainError

logger = logging.getLogger(__name__)

A = BotSignal.Action
O = BotSignal.Outcome  # noqa: E741 - the outcome enum, short like lifecycle's S
TOKEN_BYTES = 32
MAX_PAYLOAD_CHARS = 4000
# A TradingView alert message for a webhook bot: {{timenow}} is the alert's time, so a
# redelivery carries the same signal_id and timestamp and is recognised.
EXAMPLE_ALERT = {
    "action": "enter_long",
    "signal_id": "{{ticker}}-{{timenow}}",
    "timestamp": "{{timenow}}",
}


class SignalRefused(DomainError):
    """A logged signal that did nothing; ``status`` and ``code`` say why (409 unless stated)."""

    code = "signal_refused"
    status = 409

    def __init__(self, message: str, *, code: str, status: int = 409, fields: dict | None = None):
        super().__init__(message, code=code, fields=fields)
        self.status = status


# ------------------------------------------------------------------ the secret
def webhook_path(token: str) -> str:
    """The path of a token's webhook (``/api/v1/signals/<token>/``)."""
    from django.urls import reverse

    return reverse("signals-api:receive", kwargs={"token": token})


def webhook_masked_path(webhook: BotWebhook) -> str:
    """The webhook's path with all but the token's first characters hidden."""
    return webhook_path(f"{webhook.token_hint}{'•' * 8}")


@transaction.atomic
def bot_webhook_rotate(*, bot: Bot) -> str:
    """Give a webhook bot a new secret token and return it (the only time it is readable).

    The previous URL stops working at once. Raises ``Conflict`` for a strategy bot.
    """
    bot = Bot.objects.select_for_update().get(pk=bot.pk)
    if bot.source != Bot.Source.WEBHOOK:
        raise Conflict("Only a webhook bot has a signal URL (this bot runs a strategy).")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    existed = BotWebhook.objects.filter(bot=bot).exists()
    BotWebhook.objects.update_or_create(
        bot=bot,
        defaults={
            "token_hash": BotWebhook.hash_token(token),
            "token_hint": token[:6],
            "rotated_at": timezone.now(),
        },
    )
    bot_event_add(
        bot=bot,
        kind="lifecycle",
        message="Webhook URL rotated; the previous one no longer works."
        if existed
        else "Webhook URL created.",
    )
    return token


# -------------------------------------------------------------- identification
def signal_dedup_key(
    *, signal_id: str, action: str, size: Decimal | None, price: Decimal | None, timestamp: datetime | None
) -> str:
    """What identifies a delivery: its ``signal_id``, else a hash of its meaningful content."""
    if signal_id:
        return f"id:{signal_id}"
    body = json.dumps(
        [
            action,
            str(size) if size is not None else None,
            str(price) if price is not None else None,
            timestamp.isoformat() if timestamp else None,
        ]
    )
    return "body:" + hashlib.sha256(body.encode()).hexdigest()[:40]


def signal_client_order_id(bot_id: int, dedup_key: str, index: int) -> str:
    """Deterministic per (bot, signal, decision); short enough for every exchange (36 chars)."""
    digest = hashlib.sha256(dedup_key.encode()).hexdigest()[:12]
    return f"bot{bot_id}-s{digest}-{index}"


def _storable(value: Any) -> Any:
    """``value`` with its text made storable: PostgreSQL text and jsonb hold neither NUL nor
    a lone surrogate (both arrive in JSON as ``\\u0000``, ``\\ud800``); each becomes U+FFFD or ?."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _stored_payload(payload: Any) -> Any:
    text = json.dumps(_storable(payload), default=str)
    if len(text) <= MAX_PAYLOAD_CHARS:
        return json.loads(text)
    return {"truncated": text[:MAX_PAYLOAD_CHARS]}


# --------------------------------------------------------------------- logging
def _log(
    bot: Bot,
    *,
    received_at: datetime,
    payload: Any,
    outcome: str,
    reason: str = "",
    action: str = "",
    signal_id: str = "",
    signal_time: datetime | None = None,
    dedup_key: str = "",
    client_order_ids: list[str] | None = None,
    order_ids: list[int] | None = None,
) -> BotSignal:
    reason = _storable(reason)  # validation messages quote the bad input
    signal = BotSignal.objects.create(
        bot=bot,
        received_at=received_at,
        payload=_stored_payload(payload),
        action=action,
        signal_id=signal_id,
        signal_time=signal_time,
        dedup_key=dedup_key,
        outcome=outcome,
        reason=reason[:500],
        client_order_ids=client_order_ids or [],
        order_ids=order_ids or [],
    )
    what = f"Webhook {action or 'signal'}{f' ({signal_id})' if signal_id else ''} {outcome}"
    orders = f": {len(signal.order_ids)} order(s)" if signal.order_ids else ""
    bot_event_add(
        bot=bot,
        kind="signal" if outcome == O.ACCEPTED else "error",
        message=f"{what}{orders}{f' — {reason}' if reason else ''}",
        data={
            "signal": signal.pk,
            "outcome": outcome,
            "action": action,
            "client_order_ids": signal.client_order_ids,
        },
    )
    return signal


@transaction.atomic
def signal_record_invalid(*, bot: Bot, payload: Any, fields: dict[str, Any], message: str) -> BotSignal:
    """Log a delivery whose body did not validate (the caller answers 400 with ``fields``)."""
    return _log(
        bot,
        received_at=timezone.now(),
        payload=payload,
        outcome=O.REJECTED,
        reason=f"Invalid body: {message}",
        action=payload.get("action", "")
        if isinstance(payload, dict) and payload.get("action") in A.values
        else "",
    )


# ------------------------------------------------------------------- deciding
def _decisions(bot: Bot, action: str, size: Decimal | None, price: Decimal | None) -> tuple[list[dict], str]:
    """The orders ``action`` asks for given the bot's position, and a note when there are none.

    Spot bots trade long only: ``enter_short`` is refused. A futures bot holds one net
    position: an entry against it reverses it (one order: the whole position plus the new
    one), an exit is a reduce-only close of the position it names (``exit``: either).
    """
    from apps.bots.services.accounts import bot_gateway
    from apps.bots.services.loop import _broker  # the tick's: same sizing, fees, default exits
    from apps.bots.services.orders import bot_cancel_orders

    futures = bot.is_futures
    if action == A.ENTER_SHORT and not futures:
        raise SignalRefused(
            "Spot bots trade long only: enter_short needs a futures bot (a symbol such as BTC/USDT:USDT).",
            code="unsupported_action",
        )
    if action == A.EXIT_SHORT and not futures:
        return [], "No short position (spot bots trade long only): nothing to do."
    gateway = bot_gateway(bot)
    reference = price if price is not None else gateway.fetch_ticker(bot.symbol).last
    if reference is None or reference <= 0:
        raise SignalRefused(f"No price for {bot.symbol} yet.", code="no_price", status=503)
    now_ms = int(timezone.now().timestamp() * 1000)
    one = np.array([float(reference)])
    broker = _broker(bot, Candles.from_arrays([now_ms], one, one, one, one), gateway=gateway)
    position = broker.position_size()
    if action in (A.ENTER_LONG, A.ENTER_SHORT):
        side = 1 if action == A.ENTER_LONG else -1
        if position * side > 0 and size is None:
            return [], f"Already {'long' if side > 0 else 'short'}: nothing to do."
        if position * side < 0 and broker.open_orders():
            bot_cancel_orders(bot=bot)  # the old position's exits must not act on the new one
        # Against a position: a size given is the new position's, after closing the old one.
        amount = None if size is None else float(size) + (abs(position) if position * side < 0 else 0.0)
        broker.market(side, amount)
        if not broker.decisions:
            raise SignalRefused(
                f"The bot's sizing gives nothing to {'buy' if side > 0 else 'sell'} "
                f"(free {broker.quote}: {broker.cash():g}).",
                code="nothing_to_buy",
            )
    else:  # exit, exit_long, exit_short
        wanted = {A.EXIT_LONG: 1, A.EXIT_SHORT: -1}.get(action)
        if not position:
            return [], "Already flat: nothing to do."
        if wanted is not None and position * wanted < 0:
            return [], f"No {'long' if wanted > 0 else 'short'} position: nothing to do."
        # The bracket legs of the entry would hold the coins an exit sells.
        if broker.open_orders():
            bot_cancel_orders(bot=bot)
        share = 100.0 if size is None else min(float(size) / abs(position), 1.0) * 100.0
        broker.close_position(share)
    decisions = broker.decisions
    if price is not None:
        # A price turns the order into a limit at that price.
        for decision in decisions:
            decision.update(type="limit", price=price)
    return decisions, ""


def _act(bot: Bot, *, action: str, size, price, key: str) -> tuple[list[str], list[int], str]:
    from apps.bots.services.orders import bot_place_order

    decisions, note = _decisions(bot, action, size, price)
    ids, order_ids = [], []
    for index, decision in enumerate(decisions):
        cid = signal_client_order_id(bot.pk, key, index)
        order = bot_place_order(bot=bot, decision=decision, client_order_id=cid)  # logged with its row
        ids.append(cid)
        order_ids.append(order.pk)
    return ids, order_ids, note


# -------------------------------------------------------------------- receive
def signal_receive(
    *,
    bot: Bot,
    action: str,
    payload: Any,
    size: Decimal | None = None,
    price: Decimal | None = None,
    signal_id: str = "",
    timestamp: datetime | None = None,
    received_at: datetime | None = None,
) -> BotSignal:
    """Handle one validated delivery to ``bot``'s webhook; returns the accepted ``BotSignal``.

    Raises ``SignalRefused`` (duplicate 409, stale timestamp 400, bot not
    running 409, an order refused with its own status) after logging it.
    """
    received_at = received_at or timezone.now()
    key = signal_dedup_key(signal_id=signal_id, action=action, size=size, price=price, timestamp=timestamp)
    common = {
        "received_at": received_at,
        "payload": payload,
        "action": action,
        "signal_id": signal_id,
        "signal_time": timestamp,
    }
    refusal: SignalRefused | None = None
    try:
        with transaction.atomic():
            locked = Bot.objects.select_for_update().get(pk=bot.pk)
            signal, refusal = _receive_locked(locked, key=key, size=size, price=price, common=common)
    except IntegrityError:
        # Lost a race on the key to a delivery that did not wait for the lock: the same answer.
        with transaction.atomic():
            signal, refusal = _duplicate(bot, key, common)
    if refusal is not None:
        raise refusal
    return signal


def _duplicate(bot: Bot, key: str, common: dict) -> tuple[BotSignal, SignalRefused]:
    first = BotSignal.objects.filter(bot=bot, dedup_key=key).exclude(outcome=O.DUPLICATE).first()
    when = f"{first.received_at:%Y-%m-%d %H:%M:%S} UTC ({first.outcome})" if first else "before"
    reason = f"Already received at {when}."
    signal = _log(bot, outcome=O.DUPLICATE, reason=reason, dedup_key=key, **common)
    field = "signal_id" if common["signal_id"] else "timestamp"
    return signal, SignalRefused(
        f"Duplicate signal: {reason}", code="duplicate_signal", fields={field: [reason]}
    )


def _receive_locked(
    bot: Bot, *, key: str, size, price, common: dict
) -> tuple[BotSignal, SignalRefused | None]:
    if BotSignal.objects.filter(bot=bot, dedup_key=key).exclude(outcome=O.DUPLICATE).exists():
        return _duplicate(bot, key, common)
    timestamp = common["signal_time"]
    window = settings.SIGNAL_MAX_SKEW_SECONDS
    if timestamp is not None and abs(common["received_at"] - timestamp) > timedelta(seconds=window):
        reason = f"The timestamp is more than {window} s from the server's time; refused as a replay."
        signal = _log(bot, outcome=O.REJECTED, reason=reason, dedup_key=key, **common)
        return signal, SignalRefused(reason, code="stale_signal", status=400, fields={"timestamp": [reason]})
    if bot.source != Bot.Source.WEBHOOK or bot.status != Bot.Status.RUNNING:
        reason = (
            f"The bot is {bot.status}; it acts on signals only while running."
            if bot.source == Bot.Source.WEBHOOK
            else "The bot runs a strategy, not webhook signals."
        )
        signal = _log(bot, outcome=O.REJECTED, reason=reason, dedup_key=key, **common)
        return signal, SignalRefused(reason, code="bot_not_running")
    try:
        # A savepoint: a refused order undoes this signal's orders and cancels, not its log line.
        with transaction.atomic():
            ids, order_ids, note = _act(bot, action=common["action"], size=size, price=price, key=key)
    except DomainError as exc:
        reason = exc.message
        signal = _log(bot, outcome=O.REJECTED, reason=reason, dedup_key=key, **common)
        if isinstance(exc, SignalRefused):
            return signal, exc
        return signal, SignalRefused(
            f"The order was refused: {reason}", code=exc.code, status=exc.status, fields=exc.fields
        )
    signal = _log(
        bot,
        outcome=O.ACCEPTED,
        reason=note,
        dedup_key=key,
        client_order_ids=ids,
        order_ids=order_ids,
        **common,
    )
    return signal, None
