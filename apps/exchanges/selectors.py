"""Reads for exchange connections and paper accounts, always scoped to their owner."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.errors import NotFound
from apps.exchanges.models import ExchangeConnection, PaperAccount


def connection_list(*, user) -> QuerySet[ExchangeConnection]:
    """The user's live (not deleted) connections, newest first."""
    return ExchangeConnection.objects.alive().filter(user=user)


def connection_get(*, user, pk: int) -> ExchangeConnection:
    """One of the user's live connections; another user's (or a deleted one) is a 404."""
    connection = connection_list(user=user).filter(pk=pk).first()
    if connection is None:
        raise NotFound("Exchange connection not found.")
    return connection


def paper_account_find(*, user, bot_id: int | None = None) -> PaperAccount | None:
    return PaperAccount.objects.filter(user=user, bot_id=bot_id, replay_id__isnull=True).first()
