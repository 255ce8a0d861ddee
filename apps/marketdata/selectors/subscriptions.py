"""Reads of users' watchlists (owner-scoped: another user's subscription is ``NotFound``)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.errors import NotFound
from apps.marketdata.models import Subscription


def subscription_list(*, user) -> QuerySet[Subscription]:
    return Subscription.objects.filter(user=user).select_related("market", "market__exchange")


def subscription_get(*, user, pk: int) -> Subscription:
    try:
        return subscription_list(user=user).get(pk=pk)
    except Subscription.DoesNotExist:
        raise NotFound("Subscription not found.") from None
