"""The bots app's answers to other apps' signals: the kill switch (risk), and its orders, their
fills and unfilled ends (orders), which go to the bot's log."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction

from apps.bots.models import Bot, BotEvent
from apps.bots.services.lifecycle import TRANSITIONS, bot_stop
from apps.bots.services.log import bot_event_add
from apps.core.errors import Conflict

logger = logging.getLogger(__name__)


def stop_bots_for_kill_switch(sender, *, user, activation, **kwargs) -> list[int]:
    """Stop every bot of ``user`` that is not stopped or stopping; returns their ids.

    Positions are not closed here: the kill switch closes them itself when asked,
    so a bot's own close would be a second one.
    """
    stoppable, _ = TRANSITIONS["stop"]
    stopped = []
    for bot in Bot.objects.filter(owner=user, status__in=stoppable).order_by("pk"):
        try:
            bot_stop(bot=bot)
        except Conflict:  # it stopped (or failed) meanwhile
            continue
        bot_event_add(
            bot=bot,
            kind="lifecycle",
            message="Stopped by the kill switch.",
            data={"kill_switch": activation.pk},
        )
        stopped.append(bot.pk)
    return stopped


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _log_for_order(order, **event) -> None:
    """A line in the log of the bot that placed ``order``; nothing for a replay's throw-away account.

    A log problem never fails the order's write: it runs in a savepoint and is only logged.
    """
    if order.bot_id is None or (order.paper_account_id and order.paper_account.replay_id is not None):
        return
    try:
        with transaction.atomic():
            bot_event_add(bot=order.bot, **event)
    except Exception:
        logger.exception("bot %s: no log line for order %s", order.bot_id, order.pk)


def order_logged(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """A bot's new order: one ``order`` line, written with the order's row, so it comes before the
    order's fills even when the exchange fills it at once (brackets' legs are not lines of their own;
    a re-placed client order id is no new row, so no second line). An order refused before it
    was sent (a risk limit) is born finished: its one line is the "Rejected" one."""
    if not created or raw or instance.parent_id is not None or not instance.is_open:
        return
    _log_for_order(
        instance,
        kind=BotEvent.Kind.ORDER,
        message=f"{instance.side} {instance.type} {_number(instance.amount)} {instance.symbol}",
        data={"client_order_id": instance.client_order_id, "order": instance.pk},
    )


def fill_logged(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """A new fill of a bot's order: one ``fill`` line (created once: trade ids are unique per account)."""
    if not created or raw:
        return
    order = instance.order
    fee = f", fee {_number(instance.fee)} {instance.fee_asset}".rstrip() if instance.fee else ""
    _log_for_order(
        order,
        kind=BotEvent.Kind.FILL,
        message=f"Filled: {order.side} {_number(instance.amount)} {order.symbol} "
        f"at {_number(instance.price)}{fee}",
        data={
            "order": order.pk,
            "client_order_id": order.client_order_id,
            "fill": instance.pk,
            "trade_id": instance.exchange_trade_id,
            "side": order.side,
            "amount": str(instance.amount),
            "price": str(instance.price),
            "fee": str(instance.fee),
            "fee_asset": instance.fee_asset,
        },
    )


def order_finished_logged(sender, *, order, **kwargs) -> None:
    """A bot's order cancelled, rejected or expired: an ``order`` line with the reason."""
    reason = order.reason or "no reason given"
    _log_for_order(
        order,
        kind=BotEvent.Kind.ORDER,
        message=f"{order.get_status_display()}: {order.side} {order.type} {_number(order.amount)} "
        f"{order.symbol} ({reason})",
        data={
            "order": order.pk,
            "client_order_id": order.client_order_id,
            "status": order.status,
            "reason": order.reason,
        },
    )
