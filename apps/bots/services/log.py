"""The bot's event log and its live events."""

from __future__ import annotations

from typing import Any

from apps.bots.models import Bot, BotEvent
from apps.core.events import publish_event

STATUS_EVENT = "bot.status"
LOG_EVENT = "bot.event"


def bot_event_add(*, bot: Bot, kind: str, message: str, data: dict[str, Any] | None = None) -> BotEvent:
    """Append one line to the bot's log and push it to the owner's browsers after the commit."""
    event = BotEvent.objects.create(bot=bot, kind=kind, message=message[:500], data=data or {})
    publish_event(
        bot.owner_id,
        LOG_EVENT,
        {
            "bot": bot.id,
            "id": event.id,
            "kind": kind,
            "message": event.message,
            "data": event.data,
            "created_at": event.created_at.isoformat(),
        },
        on_commit=True,
    )
    return event


def bot_publish_status(bot: Bot) -> None:
    """``bot.status`` to the owner, after the commit (nothing is announced for a rollback)."""
    publish_event(
        bot.owner_id,
        STATUS_EVENT,
        {"bot": bot.id, "status": bot.status, "error": bot.error},
        on_commit=True,
    )
