"""The one table of legal order status changes, enforced in one place (``transition``).

pending -> open -> partially filled -> filled, or cancelled / rejected / expired.
A pending order may jump straight to any later status (a market order's first
answer is usually "filled"); finished orders never change again. Staying in
the same status is always allowed (a sync that finds nothing new).
"""

from __future__ import annotations

from apps.core.errors import Conflict
from apps.orders.enums import OrderStatus as S
from apps.orders.signals import order_finished

TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}),
    S.OPEN: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}

#: The ends of an order that did not fill: ``order_finished`` is sent on reaching one.
UNFILLED_ENDS = frozenset({S.CANCELLED, S.REJECTED, S.EXPIRED})


def can_transition(current: str, new: str) -> bool:
    return current == new or new in TRANSITIONS[S(current)]


def transition(order, new: str, *, reason: str = "") -> bool:
    """Move ``order`` (not saved) to ``new``; returns whether the status changed.

    An illegal change raises ``Conflict`` (HTTP 409) naming both statuses. Reaching
    cancelled, rejected or expired sends ``order_finished`` (once: those never change);
    every caller saves the order in the same transaction.
    """
    new = S(new)
    if not can_transition(order.status, new):
        raise Conflict(
            f"An order that is {S(order.status).label.lower()} cannot become {new.label.lower()}.",
            fields={"status": f"{order.status} -> {new}"},
            code="illegal_transition",
        )
    changed = order.status != new
    order.status = new
    if reason:
        order.reason = reason[:500]
    if changed and new in UNFILLED_ENDS:
        order_finished.send(sender=type(order), order=order)
    return changed
