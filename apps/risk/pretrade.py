"""The pre-trade check ``order_place`` runs for every order (bot, API, dashboard, webhook).

``order_check`` loads the user's limits and exposure (a few queries) and asks the
pure rules in ``apps.risk.checks``; ``order_rejected`` records what a rejection
breached (an alert per limit) and takes the limit's action (pause the bot,
stop all bots) once the rejected order is stored.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model

from apps.risk import alerts, checks, selectors
from apps.risk.checks import Breach


def order_check(
    *,
    owner_id: int,
    account_key: str,
    symbol: str,
    side: str,
    amount: Decimal,
    price: Decimal | None,
    reduce_only: bool = False,
    bot_id: int | None = None,
    user_timezone: str | None = None,
    kill_switch: bool | None = None,
) -> list[Breach]:
    """The limits this order would break; an empty list lets it through.

    ``kill_switch`` is whether the owner's kill switch is on, when the caller has just read it
    (``order_place`` does, to refuse the order outright); ``None`` reads it here.
    """
    profile, limits = selectors.risk_limits_for_check(owner_id=owner_id)
    if kill_switch is None and not limits:
        kill_switch = selectors.kill_switch_is_on(user_id=owner_id)
    if not limits and not kill_switch:
        return []  # nothing to check: one query for users without limits
    if user_timezone is None:
        user_timezone = (
            get_user_model().objects.filter(pk=owner_id).values_list("timezone", flat=True).first() or "UTC"
        )
    exposure = selectors.risk_exposure(owner_id=owner_id, user_timezone=user_timezone, profile=profile)
    order = checks.OrderIntent(
        symbol=symbol,
        side=side,
        amount=amount,
        price=price or Decimal("0"),
        account_key=account_key,
        bot_id=bot_id,
        reduce_only=reduce_only,
    )
    return checks.order_breaches(order, limits, exposure)


def rejection_reason(breaches: list[Breach]) -> str:
    """What the rejected order's ``reason`` says: every limit's name and numbers."""
    return ("Risk limit: " + " ".join(b.message for b in breaches))[:500]


def order_rejected(*, owner_id: int, order_id: int, bot_id: int | None, breaches: list[Breach]) -> None:
    """Record a rejected order's breaches as alerts and take each limit's action (after the commit)."""
    for breach in breaches:
        alerts.alert_raise(
            owner_id=owner_id,
            key=alerts.breach_key(breach, source="order"),
            breach=breach,
            extra={"order_id": order_id, "bot_id": bot_id},
        )
        alerts.action_take(owner_id=owner_id, breach=breach, bot_id=bot_id)
