"""Raising, resolving and acknowledging risk alerts, and taking a breached limit's action.

One active alert per ``key`` (a unique constraint): a breach that lasts only
bumps ``occurrences`` and ``last_seen_at``; the first one is pushed to the
browser (``risk.alert``) and announced through ``risk_alert_raised``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.events import publish_event
from apps.risk.checks import Breach
from apps.risk.models import LimitAction, RiskAlert
from apps.risk.signals import risk_action_required, risk_alert_raised

logger = logging.getLogger(__name__)

SEVERITY_BY_ACTION = {
    LimitAction.REJECT: RiskAlert.Severity.WARNING,
    LimitAction.PAUSE_BOT: RiskAlert.Severity.CRITICAL,
    LimitAction.STOP_ALL_BOTS: RiskAlert.Severity.CRITICAL,
}


def alert_payload(alert: RiskAlert) -> dict:
    return {
        "id": alert.pk,
        "key": alert.key,
        "kind": alert.kind,
        "severity": alert.severity,
        "message": alert.message,
        "data": alert.data,
        "action": alert.action,
        "occurrences": alert.occurrences,
        "created_at": alert.created_at.isoformat() if alert.created_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
    }


def breach_key(breach: Breach, *, source: str) -> str:
    """The dedup key: one active alert per limit (and market/asset) and source (order or monitor)."""
    limit = f"limit:{breach.limit_id}" if breach.limit_id else f"profile:{breach.code}"
    return f"{source}:{limit}:{breach.symbol}"[:120]


@transaction.atomic
def alert_raise(
    *, owner_id: int, key: str, breach: Breach, severity: str | None = None, extra: dict | None = None
) -> tuple[RiskAlert, bool]:
    """Open an alert for ``breach`` under ``key``, or count one more occurrence of the active one.

    Returns ``(alert, created)``. A new alert is published and announced after the commit.
    """
    now = timezone.now()
    severity = severity or SEVERITY_BY_ACTION.get(breach.action, RiskAlert.Severity.WARNING)
    data = {**breach.as_dict(), **(extra or {})}
    active = (
        RiskAlert.objects.select_for_update()
        .filter(owner_id=owner_id, key=key, resolved_at__isnull=True)
        .first()
    )
    if active is not None:
        active.occurrences += 1
        active.last_seen_at = now
        active.data = data
        active.save(update_fields=["occurrences", "last_seen_at", "data"])
        return active, False
    try:
        with transaction.atomic():
            alert = RiskAlert.objects.create(
                owner_id=owner_id,
                limit_id=breach.limit_id,
                key=key,
                kind=breach.code,
                severity=severity,
                message=breach.message[:500],
                data=data,
                action="" if breach.action == LimitAction.REJECT else breach.action,
                last_seen_at=now,
            )
    except IntegrityError:  # a concurrent check opened it first
        alert = RiskAlert.objects.get(owner_id=owner_id, key=key, resolved_at__isnull=True)
        return alert, False
    publish_event(owner_id, "risk.alert", alert_payload(alert), on_commit=True)
    transaction.on_commit(lambda: _announce(alert))
    return alert, True


def _announce(alert: RiskAlert) -> None:
    payload = alert_payload(alert)
    sent = risk_alert_raised.send_robust(
        sender=RiskAlert, user_id=alert.owner_id, payload=payload, alert=alert
    )
    for receiver, response in sent:
        if isinstance(response, Exception):
            logger.error("risk_alert_raised receiver %r failed: %s", receiver, response)


def alerts_resolve_ended(*, owner_id: int, keep: Iterable[str], order_quiet_since: datetime) -> int:
    """Resolve the user's active alerts whose condition ended: monitor alerts not in ``keep``, and
    order-rejection alerts without a rejection since ``order_quiet_since``. One query when none ends."""
    ended = Q(key__startswith="monitor:") & ~Q(key__in=list(keep)) | Q(key__startswith="order:") & Q(
        last_seen_at__lt=order_quiet_since
    )
    resolved = list(
        RiskAlert.objects.filter(ended, owner_id=owner_id, resolved_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    if resolved:
        RiskAlert.objects.filter(pk__in=resolved).update(resolved_at=timezone.now())
        publish_event(owner_id, "risk.alert.resolved", {"ids": resolved}, on_commit=True)
    return len(resolved)


@transaction.atomic
def alert_acknowledge(*, alert: RiskAlert) -> RiskAlert:
    """Mark the alert as seen (idempotent: the first acknowledgement's time is kept)."""
    locked = RiskAlert.objects.select_for_update().get(pk=alert.pk)
    if locked.acknowledged_at is None:
        locked.acknowledged_at = timezone.now()
        locked.save(update_fields=["acknowledged_at"])
        publish_event(locked.owner_id, "risk.alert.acknowledged", alert_payload(locked), on_commit=True)
    return locked


def action_take(*, owner_id: int, breach: Breach, bot_id: int | None = None) -> None:
    """Ask the bots app (after the commit) to pause the bot or stop all bots, as the breached limit says."""
    if breach.action not in (LimitAction.PAUSE_BOT, LimitAction.STOP_ALL_BOTS):
        return
    kwargs = {
        "user_id": owner_id,
        "bot_id": bot_id if bot_id is not None else breach.bot_id,
        "symbol": breach.symbol if "/" in breach.symbol else "",
        "action": breach.action,
        "reason": breach.message,
    }

    def send() -> None:
        for receiver, response in risk_action_required.send_robust(sender=Breach, **kwargs):
            if isinstance(response, Exception):
                logger.error("risk action %s failed in %r: %s", kwargs["action"], receiver, response)

    transaction.on_commit(send)
