"""Reads for bots, always scoped to their owner."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.bots.models import Bot
from apps.core.errors import NotFound


def bot_list(*, user) -> QuerySet[Bot]:
    """The user's bots, newest first."""
    return Bot.objects.filter(owner=user).select_related("connection")


def bot_get(*, user, pk: int | str) -> Bot:
    """One of the user's bots; another user's is a 404."""
    bot = bot_list(user=user).filter(pk=pk).first() if str(pk).isdigit() else None
    if bot is None:
        raise NotFound("Bot not found.")
    return bot


def bot_is_owned(*, user, bot_id: int) -> bool:
    """Whether ``bot_id`` is one of the user's bots."""
    return bot_list(user=user).filter(pk=bot_id).exists()
