"""Writes for risk profiles, with the rules every limit must satisfy."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.db import transaction

from apps.core.errors import ValidationFailed
from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES
from apps.risk.models import MAX_LEVERAGE_CAP, RiskProfile

CURRENCY_RE = re.compile(r"^[A-Z0-9]{2,20}$")
MAX_OPEN_ORDERS_CAP = 10_000
_AMOUNT_LIMIT = Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)


def _check_amount(value: Decimal | None, field: str, errors: dict[str, list[str]]) -> None:
    if value is None:
        return
    if not value.is_finite() or value <= 0:
        errors[field] = ["Must be greater than 0, or empty for no limit."]
    elif value >= _AMOUNT_LIMIT:
        errors[field] = ["Too large."]
    elif value.as_tuple().exponent < -AMOUNT_PLACES:  # type: ignore[operator]
        errors[field] = [f"At most {AMOUNT_PLACES} decimal places."]


def validate_limits(
    *,
    currency: str,
    max_position_notional: Decimal | None,
    max_daily_loss: Decimal | None,
    max_leverage: Decimal,
    max_open_orders: int,
) -> dict[str, Any]:
    """Check a complete set of limits; returns them cleaned or raises ``ValidationFailed`` listing every problem."""
    errors: dict[str, list[str]] = {}
    currency = (currency or "").strip().upper()
    if not CURRENCY_RE.match(currency):
        errors["currency"] = ["Expected an asset code such as USDT or USD."]
    _check_amount(max_position_notional, "max_position_notional", errors)
    _check_amount(max_daily_loss, "max_daily_loss", errors)
    if not max_leverage.is_finite() or not Decimal(1) <= max_leverage <= MAX_LEVERAGE_CAP:
        errors["max_leverage"] = [f"Must be between 1 (no leverage) and {MAX_LEVERAGE_CAP}."]
    elif max_leverage.as_tuple().exponent < -2:  # type: ignore[operator]
        errors["max_leverage"] = ["At most 2 decimal places."]
    if not 1 <= max_open_orders <= MAX_OPEN_ORDERS_CAP:
        errors["max_open_orders"] = [
            f"Must be between 1 and {MAX_OPEN_ORDERS_CAP}; use the kill switch to stop all orders."
        ]
    if errors:
        raise ValidationFailed("Invalid risk limits.", fields=errors)
    return {
        "currency": currency,
        "max_position_notional": max_position_notional,
        "max_daily_loss": max_daily_loss,
        "max_leverage": max_leverage,
        "max_open_orders": max_open_orders,
    }


@transaction.atomic
def risk_profile_update(
    *,
    user,
    currency: str,
    max_position_notional: Decimal | None,
    max_daily_loss: Decimal | None,
    max_leverage: Decimal,
    max_open_orders: int,
    kill_switch: bool | None = None,
) -> RiskProfile:
    """Replace the user's risk limits (creating the profile on first save).

    ``kill_switch=None`` keeps the stored switch: the dashboard's limits form must
    not undo a kill switch engaged meanwhile from another tab or the API.
    """
    limits = validate_limits(
        currency=currency,
        max_position_notional=max_position_notional,
        max_daily_loss=max_daily_loss,
        max_leverage=max_leverage,
        max_open_orders=max_open_orders,
    )
    if kill_switch is not None:
        limits["kill_switch"] = kill_switch
    profile, _ = RiskProfile.objects.select_for_update().update_or_create(owner=user, defaults=limits)
    return profile


@transaction.atomic
def risk_kill_switch_set(*, user, engaged: bool) -> RiskProfile:
    """Turn the kill switch on or off, keeping every other limit (creating the profile with defaults)."""
    profile, _ = RiskProfile.objects.select_for_update().get_or_create(owner=user)
    if profile.kill_switch != engaged:
        profile.kill_switch = engaged
        profile.save(update_fields=["kill_switch", "updated_at"])
    return profile
