"""Thin Celery tasks of the bot runtime; all on the ``bots`` queue (``CELERY_TASK_ROUTES``)."""

from __future__ import annotations

from celery import shared_task

from apps.bots import services
from apps.core.schedules import Schedule

PERIODIC_TASKS: list[Schedule] = [
    # Often enough that a 1m bot ticks within seconds of its candle closing; each run
    # is one query plus a message per due bot.
    Schedule("bots: tick bots whose candle closed", "apps.bots.tasks.bots_enqueue_due", 5, queue="bots"),
    # A start or stop whose message was lost (broker restart; the embedded demo's seed) is sent again.
    Schedule("bots: resend a lost start or stop", "apps.bots.tasks.bots_resend_lost", 15, queue="bots"),
]


@shared_task(name="apps.bots.tasks.bots_enqueue_due", ignore_result=True)
def bots_enqueue_due() -> int:
    """Send one tick per running bot whose timeframe candle has closed."""
    return services.bots_enqueue_due()


@shared_task(name="apps.bots.tasks.bots_resend_lost", ignore_result=True)
def bots_resend_lost() -> int:
    """Send again a bot's activation or stop that stayed undone (its message was lost)."""
    return services.bots_resend_lost()


@shared_task(name="apps.bots.tasks.bot_tick", ignore_result=True)
def bot_tick(bot_id: int, candle_ms: int) -> bool:
    """Tick one bot for one closed candle (claimed: a duplicate delivery does nothing), then
    the next one at once if the bot is catching up on candles it missed."""
    if services.bot_tick(bot_id=bot_id, candle_ms=candle_ms) is None:
        return False
    services.bot_tick_catch_up(bot_id=bot_id, candle_ms=candle_ms)
    return True


@shared_task(name="apps.bots.tasks.bot_activate", ignore_result=True)
def bot_activate(bot_id: int) -> None:
    """Finish ``bot_start``: starting -> running (or error)."""
    services.bot_activate(bot_id=bot_id)


@shared_task(name="apps.bots.tasks.bot_finish_stop", ignore_result=True)
def bot_finish_stop(bot_id: int, close_position: bool = False) -> None:
    """Finish ``bot_stop``: cancel the bot's orders (and close), then stopped."""
    services.bot_finish_stop(bot_id=bot_id, close_position=close_position)


@shared_task(name="apps.bots.tasks.bot_replay_run", bind=True, ignore_result=True, acks_late=True)
def bot_replay_run(self, replay_id: int, attempt: int = 1) -> str | None:
    """Run one bot replay (claimed: a redelivered task does nothing); returns its final status."""
    return services.bot_replay_execute(
        replay_id=replay_id, worker=self.request.hostname or "", attempt=attempt
    )
