"""Reads for risk profiles."""

from __future__ import annotations

from apps.risk.models import RiskProfile


def risk_profile_get(*, user) -> RiskProfile:
    """The user's risk profile; the defaults (unsaved) when the user never set one.

    Reading never writes: a profile row exists once the user saves limits.
    """
    return RiskProfile.objects.filter(owner=user).first() or RiskProfile(owner=user)


def kill_switch_is_on(*, user_id: int) -> bool:
    """Whether the user's kill switch is engaged (``order_place`` refuses new orders then)."""
    return RiskProfile.objects.filter(owner_id=user_id, kill_switch=True).exists()
