"""Bots services: settings (create/update/delete), the lifecycle, the loop.

One module per job; the public names are re-exported here, so callers import
from ``apps.bots.services``.
"""

from apps.bots.services.config import bot_create, bot_delete, bot_update
from apps.bots.services.lifecycle import (
    TRANSITIONS,
    bot_activate,
    bot_error,
    bot_finish_stop,
    bot_pause,
    bot_resume,
    bot_start,
    bot_stop,
    bots_resend_lost,
)
from apps.bots.services.log import bot_event_add
from apps.bots.services.loop import (
    bot_tick,
    bot_tick_catch_up,
    bot_tick_claim,
    bots_enqueue_due,
    client_order_id,
    last_closed_candle_ms,
)
from apps.bots.services.replay import bot_replay_cancel, bot_replay_create, bot_replay_execute
from apps.bots.services.signals import (
    SignalRefused,
    bot_webhook_rotate,
    signal_receive,
    signal_record_invalid,
)

__all__ = [
    "TRANSITIONS",
    "SignalRefused",
    "bot_activate",
    "bot_create",
    "bot_delete",
    "bot_error",
    "bot_event_add",
    "bot_finish_stop",
    "bot_pause",
    "bot_replay_cancel",
    "bot_replay_create",
    "bot_replay_execute",
    "bot_resume",
    "bot_start",
    "bot_stop",
    "bot_tick",
    "bot_tick_catch_up",
    "bot_tick_claim",
    "bot_update",
    "bot_webhook_rotate",
    "bots_enqueue_due",
    "bots_resend_lost",
    "client_order_id",
    "last_closed_candle_ms",
    "signal_receive",
    "signal_record_invalid",
]
