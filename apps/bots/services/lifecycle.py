"""The bot lifecycle: stopped -> starting -> running <-> paused -> stopping -> stopped, or error.

Every transition takes the bot's row lock (``select_for_update``), checks the
table below in one place, writes a ``BotEvent`` and publishes ``bot.status``
after the commit. An illegal transition is a ``Conflict`` (409) saying why.
Starting and stopping finish on a worker (queue ``bots``): activation checks
the account, stopping cancels the bot's open orders and, if asked, closes its
position. Both worker halves are idempotent, and ``bots_resend_lost`` (a beat job)
sends one again when a bot has stayed starting or stopping for
``BOT_TRANSITION_RESEND_SECONDS``: a message lost with a broker restart, or sent
by a process whose in-memory broker no worker reads (``seed_demo`` in the
embedded default), no longer leaves a bot "Starting" for ever.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.quotas import Quota, quota_guard
from apps.backtests.models import StrategyKind
from apps.bots.models import Bot
from apps.bots.services.log import bot_event_add, bot_publish_status
from apps.core.errors import Conflict

logger = logging.getLogger(__name__)

S = Bot.Status
# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "start": ((S.STOPPED, S.ERROR), S.STARTING),
    "activate": ((S.STARTING,), S.RUNNING),
    "pause": ((S.RUNNING,), S.PAUSED),
    "resume": ((S.PAUSED,), S.RUNNING),
    "stop": ((S.STARTING, S.RUNNING, S.PAUSED, S.ERROR), S.STOPPING),
    "finish_stop": ((S.STOPPING,), S.STOPPED),
}
ACTIVATE_TASK = "apps.bots.tasks.bot_activate"
STOP_TASK = "apps.bots.tasks.bot_finish_stop"
BOTS_QUEUE = "bots"


def send_bot_task(task_name: str, *args: object, **kwargs: object) -> None:
    """Send a task to the ``bots`` queue by name (services never import the task module)."""
    from celery import current_app

    current_app.send_task(task_name, args=list(args), kwargs=kwargs, queue=BOTS_QUEUE)


def _transition(bot_id: int, action: str, *, message: str, error: str = "", data: dict | None = None) -> Bot:
    """Lock the bot, check ``action`` against ``TRANSITIONS``, move it, log it, announce it."""
    bot = Bot.objects.select_for_update().get(pk=bot_id)
    sources, target = TRANSITIONS[action]
    if bot.status not in sources:
        allowed = " or ".join(str(s) for s in sources)
        raise Conflict(
            f"Cannot {action.replace('_', ' ')} a bot that is {bot.status} (it must be {allowed})."
        )
    previous = bot.status
    bot.status = target
    bot.error = error
    fields = ["status", "error", "updated_at"]
    if action == "start":
        # Stopping cancelled the bot's orders: its event strategy starts afresh (``initialize``),
        # from the newest closed candle, as a resumed bot does: the candles that closed while it
        # was stopped are not caught up (loop.candle_to_tick would, up to BOT_CATCH_UP_CANDLES).
        bot.failures, bot.retry_at, bot.strategy_state = 0, None, None
        bot.last_candle_ms = bot.tick_candle_ms = bot.tick_lease_until = None
        fields += [
            "failures",
            "retry_at",
            "strategy_state",
            "last_candle_ms",
            "tick_candle_ms",
            "tick_lease_until",
        ]
    bot.save(update_fields=fields)
    bot_event_add(
        bot=bot, kind="lifecycle", message=message, data={"from": previous, "to": target, **(data or {})}
    )
    bot_publish_status(bot)
    return bot


@transaction.atomic
def bot_start(*, bot: Bot) -> Bot:
    """Ask a stopped (or failed) bot to start: it is ``starting`` until a worker activates it.

    Raises ``QuotaExceeded`` when the owner already has as many bots starting, running or paused
    as their quota allows.
    """
    with quota_guard(user_id=bot.owner_id, quota=Quota.RUNNING_BOTS):
        bot = _transition(bot.pk, "start", message="Starting.")
    transaction.on_commit(lambda: send_bot_task(ACTIVATE_TASK, bot.pk))
    return bot


@transaction.atomic
def bot_activate(*, bot_id: int) -> Bot | None:
    """Worker side of ``bot_start``: make sure the account exists, then ``running``.

    Returns ``None`` when the bot is no longer starting (stopped meanwhile, or a
    redelivered task): activation is idempotent.
    """
    bot = Bot.objects.select_for_update().get(pk=bot_id)
    if bot.status != S.STARTING:
        return None
    try:
        account_description = _ensure_account(bot)
        if bot.strategy_kind == StrategyKind.USER:
            _ensure_strategy_loads(bot)
    except Exception as exc:  # any reason the account is unusable stops the start, with the reason
        logger.warning("bot %s could not start: %s", bot_id, exc)
        return _fail(bot, f"Could not start: {exc}")
    return _transition(bot_id, "activate", message=f"Running on {account_description}.")


def _ensure_account(bot: Bot) -> str:
    if bot.mode == Bot.Mode.PAPER:
        from apps.bots.services.accounts import bot_paper_account

        account = bot_paper_account(bot=bot)
        return f"paper account #{account.pk}"
    if bot.connection is None or bot.connection.deleted_at is not None:
        raise Conflict("its exchange connection was deleted")
    if bot.is_futures:  # the exchange refuses while a position is open: the start fails with its reason
        from apps.bots.services.accounts import bot_futures_setup, bot_gateway

        bot_futures_setup(bot=bot, gateway=bot_gateway(bot))
    return f"{bot.connection.exchange} connection {bot.connection.label!r}"


def _ensure_strategy_loads(bot: Bot) -> None:
    """Start the user strategy's sandbox session on this worker: code that cannot load (or
    parameters its version refuses) fail the start with the reason, not the first tick."""
    from apps.bots.services.user_code import bot_session

    with bot_session(bot):
        pass


def _fail(bot: Bot, reason: str) -> Bot:
    """Any status -> error with ``reason`` (the caller holds the row lock)."""
    previous = bot.status
    bot.status, bot.error = S.ERROR, reason[:2000]
    bot.tick_candle_ms, bot.tick_lease_until = None, None
    bot.save(update_fields=["status", "error", "tick_candle_ms", "tick_lease_until", "updated_at"])
    bot_event_add(bot=bot, kind="error", message=reason, data={"from": previous, "to": S.ERROR})
    bot_publish_status(bot)
    return bot


@transaction.atomic
def bot_error(*, bot_id: int, reason: str) -> Bot:
    """Put a bot into ``error`` with ``reason`` (the loop's last resort)."""
    return _fail(Bot.objects.select_for_update().get(pk=bot_id), reason)


@transaction.atomic
def bot_pause(*, bot: Bot) -> Bot:
    """Running -> paused: the loop skips it; its resting orders stay."""
    return _transition(bot.pk, "pause", message="Paused.")


@transaction.atomic
def bot_resume(*, bot: Bot) -> Bot:
    """Paused -> running; the next closed candle is ticked (missed ones are not replayed)."""
    bot = _transition(bot.pk, "resume", message="Resumed.")
    # Do not act on candles that closed while paused.
    Bot.objects.filter(pk=bot.pk).update(last_candle_ms=None, tick_candle_ms=None, tick_lease_until=None)
    return bot


@transaction.atomic
def bot_stop(*, bot: Bot, close_position: bool = False) -> Bot:
    """Ask a bot to stop: ``stopping`` until a worker has cancelled its open orders
    (and closed its position if ``close_position``), then ``stopped``."""
    bot = _transition(
        bot.pk,
        "stop",
        message="Stopping" + (" and closing the position." if close_position else "."),
        data={"close_position": close_position},  # for a resend (bots_resend_lost)
    )
    transaction.on_commit(lambda: send_bot_task(STOP_TASK, bot.pk, close_position=close_position))
    return bot


def bot_finish_stop(*, bot_id: int, close_position: bool = False) -> Bot | None:
    """Worker side of ``bot_stop``: cancel the bot's orders, optionally close, then ``stopped``.

    The exchange calls happen outside the row lock; a failure is logged and the
    bot still stops (a stopped bot must never keep trading), with the failure in its log.
    """
    bot = Bot.objects.filter(pk=bot_id, status=S.STOPPING).select_related("owner").first()
    if bot is None:
        return None
    from apps.bots.services.orders import bot_cancel_orders, bot_close_position
    from apps.bots.services.user_code import bot_session_close

    bot_session_close(bot_id=bot_id)  # this worker's; other workers' sessions close when idle

    problems = []
    for step in (bot_cancel_orders, bot_close_position) if close_position else (bot_cancel_orders,):
        try:
            step(bot=bot)
        except Exception as exc:
            logger.warning("bot %s: %s failed: %s", bot_id, step.__name__, exc)
            problems.append(f"{step.__name__.removeprefix('bot_').replace('_', ' ')}: {exc}")
    with transaction.atomic():
        if not Bot.objects.select_for_update().filter(pk=bot_id, status=S.STOPPING).exists():
            return None  # a resent stop finished first
        if problems:
            bot_event_add(bot=bot, kind="error", message="While stopping: " + "; ".join(problems))
        bot = _transition(bot_id, "finish_stop", message="Stopped.")
        Bot.objects.filter(pk=bot_id).update(tick_candle_ms=None, tick_lease_until=None, retry_at=None)
    return bot


def bots_resend_lost() -> int:
    """Send again the worker half of a start or stop that has not run for
    ``BOT_TRANSITION_RESEND_SECONDS`` (its message was lost); returns how many were sent.

    Each bot is sent at most once per period (its ``updated_at`` moves on), and a
    duplicate of a message that was only slow does nothing (``bot_activate`` and
    ``bot_finish_stop`` check the status under the row lock).
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.BOT_TRANSITION_RESEND_SECONDS)
    sent = 0
    stuck = Bot.objects.filter(status__in=(S.STARTING, S.STOPPING), updated_at__lt=cutoff)
    for bot_id, status in stuck.values_list("pk", "status"):
        if not Bot.objects.filter(pk=bot_id, status=status, updated_at__lt=cutoff).update(updated_at=now):
            continue  # it moved on meanwhile
        if status == S.STARTING:
            send_bot_task(ACTIVATE_TASK, bot_id)
        else:
            send_bot_task(STOP_TASK, bot_id, close_position=_asked_to_close(bot_id))
        logger.info(
            "bot %s: %s for over %ss, its worker task sent again",
            bot_id, status, settings.BOT_TRANSITION_RESEND_SECONDS,
        )  # fmt: skip
        sent += 1
    return sent


def _asked_to_close(bot_id: int) -> bool:
    """Whether the bot's latest stop asked to close its position (its lifecycle event says)."""
    from apps.bots.models import BotEvent

    data = (
        BotEvent.objects.filter(bot_id=bot_id, kind="lifecycle", data__to=S.STOPPING)
        .order_by("-id")
        .values_list("data", flat=True)
        .first()
    )
    return bool((data or {}).get("close_position"))
