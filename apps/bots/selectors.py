"""Reads for bots, always scoped to their owner."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.bots.models import Bot, BotEvent, BotSignal, BotWebhook
from apps.core.errors import NotFound, ValidationFailed


def bot_list(*, user, status: str | None = None) -> QuerySet[Bot]:
    """The user's bots, newest first; ``status`` filters (an unknown status is a 400)."""
    bots = Bot.objects.filter(owner=user).select_related("connection", "strategy_version", "webhook")
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


def bot_signal_list(*, bot: Bot) -> QuerySet[BotSignal]:
    """The webhook signals the bot received, newest first (``bot`` came owner-scoped)."""
    return BotSignal.objects.filter(bot=bot)


def webhook_bot_get(*, token: str) -> Bot:
    """The webhook bot whose secret is ``token`` (no user: the token authenticates); else 404."""
    webhook = (
        BotWebhook.objects.select_related("bot__owner")
        .filter(token_hash=BotWebhook.hash_token(token))
        .first()
    )
    if webhook is None or webhook.bot.source != Bot.Source.WEBHOOK:
        raise NotFound("No such signal webhook.")
    return webhook.bot
