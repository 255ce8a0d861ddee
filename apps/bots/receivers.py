"""The bots app's answers to other apps' signals."""

from __future__ import annotations

from apps.bots.models import Bot
from apps.bots.services.lifecycle import TRANSITIONS, bot_stop
from apps.bots.services.log import bot_event_add
from apps.core.errors import Conflict


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
