"""Where events reach ``notify``: fills (orders), bot errors and stops (bots), risk alerts.

Connected in ``RiskConfig.ready``. Model signals name their sender as
``"app_label.Model"``, so this app hears the bots app without importing it
(bots sit above risk). A notification problem never fails the caller's write:
each receiver runs in a savepoint and only logs.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save

from apps.risk.models import NotificationEvent
from apps.risk.notifications import notify, wants
from apps.risk.signals import risk_alert_raised

logger = logging.getLogger(__name__)


def _safe_notify(user_id: int, event: str, payload: dict[str, Any]) -> None:
    if wants(user_id, event) is False:  # known from the cache: no channel of the user wants it
        return
    try:
        with transaction.atomic():
            notify(user_id, event, payload)
    except Exception:
        logger.exception("notification %s for user %s not queued", event, user_id)


def fill_recorded(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if not created or raw:
        return
    order = instance.order
    _safe_notify(
        order.owner_id,
        NotificationEvent.FILL,
        {
            "fill_id": instance.pk,
            "order_id": order.pk,
            "bot_id": order.bot_id,
            "symbol": order.symbol,
            "side": order.side,
            "amount": str(instance.amount),
            "price": str(instance.price),
            "fee": str(instance.fee),
            "fee_asset": instance.fee_asset,
        },
    )


def bot_event_recorded(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """A bot that failed (not a tick that will be retried) or that finished stopping."""
    if not created or raw:
        return
    data = instance.data or {}
    bot = instance.bot
    payload = {"bot_id": bot.pk, "bot": bot.name, "symbol": bot.symbol, "message": instance.message}
    if instance.kind == "error" and "retry_in" not in data:
        _safe_notify(bot.owner_id, NotificationEvent.BOT_ERROR, payload)
    elif instance.kind == "lifecycle" and data.get("to") == "stopped":
        _safe_notify(
            bot.owner_id, NotificationEvent.BOT_STOPPED, {**payload, "message": f"Bot {bot.name!r} stopped."}
        )


#: Risk alerts worth a message: a limit breached (warning) or one whose action paused or stopped bots
#: (critical). An info alert (a limit nearly used) opens and closes as the market moves; it stays on
#: the risk page and the live feed instead of reaching email, webhooks and Telegram.
NOTIFIED_ALERT_SEVERITIES = frozenset({"warning", "critical"})


def risk_alert(sender, *, user_id: int, payload: dict[str, Any], **kwargs) -> None:
    if payload.get("severity", "warning") not in NOTIFIED_ALERT_SEVERITIES:
        return
    _safe_notify(user_id, NotificationEvent.RISK_ALERT, payload)


def connect() -> None:
    post_save.connect(fill_recorded, sender="orders.Fill", dispatch_uid="risk.notify.fill")
    post_save.connect(bot_event_recorded, sender="bots.BotEvent", dispatch_uid="risk.notify.bot_event")
    risk_alert_raised.connect(risk_alert, dispatch_uid="risk.notify.risk_alert")
