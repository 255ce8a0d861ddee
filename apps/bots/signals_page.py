"""The webhook section of a signal bot's detail page: its URL, rotation, an example alert, the latest signals."""

from __future__ import annotations

import json
from typing import Any

from apps.bots import selectors
from apps.bots.models import Bot
from apps.bots.services.signals import EXAMPLE_ALERT, webhook_masked_path, webhook_path

LATEST = 10


def webhook_section(request, bot: Bot, *, token: str | None = None) -> dict[str, Any]:
    """What the section shows; the full URL only when ``token`` was just made (create or rotate)."""
    webhook = getattr(bot, "webhook", None)
    if webhook is None:
        url = None
    else:
        url = request.build_absolute_uri(webhook_path(token) if token else webhook_masked_path(webhook))
    return {
        "url": url,
        "full": token is not None,
        "hint": webhook.token_hint if webhook else "",
        "rotated_at": webhook.rotated_at if webhook else None,
        "example": json.dumps(EXAMPLE_ALERT, indent=2),
        "signals": list(selectors.bot_signal_list(bot=bot)[:LATEST]),
    }
