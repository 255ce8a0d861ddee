"""Reads for orders and fills, always scoped to their owner."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.core.errors import NotFound
from apps.orders.models import Fill, Order


def order_list(*, user) -> QuerySet[Order]:
    """The user's orders, newest first."""
    return Order.objects.filter(owner=user)


def order_get(*, user, pk: int | str) -> Order:
    """One of the user's orders with its fills; another user's is a 404."""
    order = None
    if str(pk).isdigit():
        order = (
            order_list(user=user)
            .prefetch_related(Prefetch("fills", queryset=Fill.objects.order_by("timestamp", "id")))
            .filter(pk=pk)
            .first()
        )
    if order is None:
        raise NotFound("Order not found.")
    return order
