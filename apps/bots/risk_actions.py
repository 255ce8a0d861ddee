"""The bots' side of a breached risk limit's action (``apps.risk.signals.risk_action_required``).

Risk sits below bots and cannot call them; it announces the action and this
carries it out through the bot lifecycle (row locks, events, ``bot.status``).
"""

from __future__ import annotations

import logging

from django.dispatch import receiver

from apps.bots.models import Bot
from apps.bots.services.lifecycle import bot_pause, bot_stop
from apps.bots.services.log import bot_event_add
from apps.core.errors import Conflict
from apps.risk.signals import risk_action_required

logger = logging.getLogger(__name__)


@receiver(risk_action_required, dispatch_uid="bots_risk_action")
def risk_action(sender, *, user_id: int, bot_id: int | None, symbol: str, action: str, reason: str, **kwargs):
    """``pause_bot``: the bot (or every running bot of the user on ``symbol``); ``stop_all_bots``: all of them."""
    bots = Bot.objects.filter(owner_id=user_id)
    if action == "pause_bot":
        bots = bots.filter(status=Bot.Status.RUNNING)
        bots = (
            bots.filter(pk=bot_id) if bot_id is not None else bots.filter(symbol=symbol) if symbol else bots
        )
    elif action == "stop_all_bots":
        bots = bots.filter(
            status__in=[Bot.Status.STARTING, Bot.Status.RUNNING, Bot.Status.PAUSED, Bot.Status.ERROR]
        )
    else:
        return
    for bot in bots.order_by("pk"):
        try:
            bot = bot_pause(bot=bot) if action == "pause_bot" else bot_stop(bot=bot)
        except Conflict:  # changed status meanwhile
            continue
        bot_event_add(bot=bot, kind="error", message=f"Risk limit: {reason}", data={"risk_action": action})
