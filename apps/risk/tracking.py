"""How risk follows trading without the orders code calling it: model signals on positions and fills.

* A position's realized P&L moving is a trade result: today's realized P&L and
  the losing streak are kept in ``RiskState`` (the values as loaded are kept
  on the instance by ``post_init``, so no extra query).
* A limit or profile changing drops the cached rules the pre-trade check reads; a
  notification channel changing drops the cached channels ``notify`` reads.
* Every fill schedules the monitor for its owner, debounced: at most one run per
  ``FILL_DEBOUNCE_SECONDS`` per user whatever the number of fills.
"""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_init, post_save
from django.dispatch import receiver

from apps.core.cache import first_in_window
from apps.orders.models import Fill, Position
from apps.risk import services
from apps.risk.models import NotificationChannel, RiskLimit, RiskProfile
from apps.risk.notifications import channels_cache_key
from apps.risk.selectors import rules_cache_key

logger = logging.getLogger(__name__)

FILL_DEBOUNCE_SECONDS = 5
MONITOR_USER_TASK = "apps.risk.tasks.risk_monitor_user"


@receiver(post_init, sender=Position, dispatch_uid="risk_position_loaded")
def _remember_loaded(sender, instance: Position, **kwargs) -> None:
    instance._risk_loaded = (instance.side, instance.size, instance.realized_pnl)


@receiver(post_save, sender=Position, dispatch_uid="risk_position_saved")
def _position_saved(sender, instance: Position, created: bool, **kwargs) -> None:
    side, size, realized = getattr(instance, "_risk_loaded", (Position.Side.FLAT, 0, 0))
    instance._risk_loaded = (instance.side, instance.size, instance.realized_pnl)
    change = instance.realized_pnl - realized
    if not change:
        return
    # A trade closed when a long/short position shrank or flipped; an opening fill's fee is no trade result.
    closed = side != Position.Side.FLAT and (instance.side != side or instance.size < size)
    # The owner's time zone where the saver holds the owner (no query for it otherwise).
    owner = instance.owner if Position.owner.is_cached(instance) else None
    services.risk_state_record_realized(
        owner_id=instance.owner_id,
        change=change,
        closed_trade=closed,
        owner_timezone=getattr(owner, "timezone", None),
    )


@receiver(post_save, sender=Fill, dispatch_uid="risk_fill_saved")
def _fill_saved(sender, instance: Fill, created: bool, **kwargs) -> None:
    if not created:
        return
    owner_id = instance.order.owner_id
    transaction.on_commit(lambda: monitor_soon(owner_id))


def monitor_soon(owner_id: int) -> None:
    """Enqueue one monitor run for the user unless one is already due (debounce through the cache)."""
    if not first_in_window(f"risk:monitor-due:{owner_id}", FILL_DEBOUNCE_SECONDS):
        return
    try:
        from celery import current_app

        current_app.send_task(MONITOR_USER_TASK, args=[owner_id], countdown=FILL_DEBOUNCE_SECONDS)
    except Exception:  # the minute beat catches up; a fill must never fail for this
        logger.exception("could not enqueue the risk monitor for user %s", owner_id)


@receiver(post_save, sender=RiskLimit, dispatch_uid="risk_limit_saved")
@receiver(post_delete, sender=RiskLimit, dispatch_uid="risk_limit_deleted")
@receiver(post_save, sender=RiskProfile, dispatch_uid="risk_profile_saved")
@receiver(post_delete, sender=RiskProfile, dispatch_uid="risk_profile_deleted")
def _rules_changed(sender, instance, **kwargs) -> None:
    _drop(rules_cache_key(instance.owner_id))


@receiver(post_save, sender=NotificationChannel, dispatch_uid="notification_channel_saved")
@receiver(post_delete, sender=NotificationChannel, dispatch_uid="notification_channel_deleted")
def _channels_changed(sender, instance, **kwargs) -> None:
    _drop(channels_cache_key(instance.owner_id))


def _drop(key: str) -> None:
    cache.delete(key)
    # Also after the commit: a reader that saw the old rows meanwhile must not keep them cached.
    transaction.on_commit(lambda: cache.delete(key))
