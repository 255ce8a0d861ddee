"""Reads for portfolio history, always scoped to their owner."""

from __future__ import annotations

from datetime import datetime

from django.db.models import OuterRef, QuerySet, Subquery

from apps.portfolio.models import EquitySnapshot


def equity_snapshot_list(
    *,
    user,
    start: datetime | None = None,
    end: datetime | None = None,
    currency: str | None = None,
) -> QuerySet[EquitySnapshot]:
    """The user's snapshots, newest first; ``start`` inclusive, ``end`` exclusive."""
    qs = EquitySnapshot.objects.filter(owner=user)
    if start is not None:
        qs = qs.filter(timestamp__gte=start)
    if end is not None:
        qs = qs.filter(timestamp__lt=end)
    if currency:
        qs = qs.filter(currency=currency.upper())
    return qs


def equity_latest(*, user) -> list[EquitySnapshot]:
    """The newest snapshot in each currency the user has, by currency."""
    # A correlated subquery rather than PostgreSQL's DISTINCT ON: the embedded default runs on SQLite.
    newest = (
        EquitySnapshot.objects.filter(owner=user, currency=OuterRef("currency"))
        .order_by("-timestamp", "-id")
        .values("pk")[:1]
    )
    return list(EquitySnapshot.objects.filter(owner=user, pk=Subquery(newest)).order_by("currency"))
