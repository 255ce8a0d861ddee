"""Writes for portfolio history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.core.errors import ValidationFailed
from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES
from apps.portfolio.models import EquitySnapshot


@transaction.atomic
def equity_snapshot_record(*, user, equity: Decimal, currency: str, timestamp: datetime) -> EquitySnapshot:
    """Store the account value at ``timestamp``; recording the same time twice replaces the value.

    Idempotent so that a retried snapshot task never leaves two points at one time.
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(equity, Decimal) or not equity.is_finite():
        errors["equity"] = ["Expected a finite Decimal."]
    elif abs(equity) >= Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES):
        errors["equity"] = ["Too large."]
    currency = (currency or "").strip().upper()
    if not currency or len(currency) > 20:
        errors["currency"] = ["Expected an asset code such as USDT."]
    if timezone.is_naive(timestamp):
        errors["timestamp"] = ["Expected a timezone-aware datetime."]
    if errors:
        raise ValidationFailed("Invalid equity snapshot.", fields=errors)
    snapshot, _ = EquitySnapshot.objects.update_or_create(
        owner=user, currency=currency, timestamp=timestamp, defaults={"equity": equity}
    )
    return snapshot
