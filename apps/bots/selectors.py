"""Reads for bots, always scoped to their owner."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.bots.models import Bot, BotEvent, BotReplay
from apps.core.errors import NotFound, ValidationFailed


def bot_list(*, user, status: str | None = None) -> QuerySet[Bot]:
    """The user's bots, newest first; ``status`` filters (an unknown status is a 400)."""
    bots = Bot.objects.filter(owner=user).select_related("connection", "strategy_version")
    if status not in (None, ""):
        if status not in Bot.Status.values:
            raise ValidationFailed(
                f"Unknown status; use one of {', '.join(Bot.Status.values)}.",
                fields={"status": ["unknown status"]},
            )
        bots = bots.filter(status=status)
    return bots


def bot_get(*, user, pk: int | str) -> Bot:
    """One of the user's bots; another user's is a 404."""
    bot = bot_list(user=user).filter(pk=pk).first() if str(pk).isdigit() else None
    if bot is None:
        raise NotFound("Bot not found.")
    return bot


def bot_is_owned(*, user, bot_id: int) -> bool:
    """Whether ``bot_id`` is one of the user's bots."""
    return bot_list(user=user).filter(pk=bot_id).exists()


def bot_event_list(*, bot: Bot) -> QuerySet[BotEvent]:
    """The bot's log, newest first (the caller got ``bot`` through an owner-scoped selector)."""
    return BotEvent.objects.filter(bot=bot)


def bot_replay_list(*, bot: Bot) -> QuerySet[BotReplay]:
    """The bot's replays, newest first (the caller got ``bot`` through an owner-scoped selector)."""
    return BotReplay.objects.filter(bot=bot)


def bot_replay_get(*, user, bot_id: int | str, pk: int | str) -> BotReplay:
    """One replay of one of the user's bots; anything else is a 404."""
    replay = None
    if str(pk).isdigit() and str(bot_id).isdigit():
        replay = BotReplay.objects.filter(pk=pk, bot_id=bot_id, bot__owner=user).select_related("bot").first()
    if replay is None:
        raise NotFound("Replay not found.")
    return replay
