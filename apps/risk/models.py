"""Per-user risk limits that the risk engine (a later issue) enforces before every order."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.money import amount_field

MAX_LEVERAGE_CAP = Decimal("125")  # the highest leverage any supported exchange offers


class RiskProfile(models.Model):
    """One per user. An empty money limit means "no limit"; the kill switch blocks every new order."""

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_profile"
    )
    currency = models.CharField(max_length=20, default="USDT", help_text="currency of the money limits")
    max_position_notional = amount_field(
        null=True, blank=True, help_text="largest position value per market; empty = no limit"
    )
    max_daily_loss = amount_field(
        null=True,
        blank=True,
        help_text="new orders stop after losing this much in a UTC day; empty = no limit",
    )
    # 1 = spot only: leverage is something a user opts into, not a default.
    max_leverage = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("1"))
    max_open_orders = models.PositiveIntegerField(default=50)
    kill_switch = models.BooleanField(default=False, help_text="when on, no bot or user may place an order")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(max_position_notional__isnull=True) | Q(max_position_notional__gt=0),
                name="risk_profile_position_gt0",
            ),
            models.CheckConstraint(
                condition=Q(max_daily_loss__isnull=True) | Q(max_daily_loss__gt=0),
                name="risk_profile_daily_loss_gt0",
            ),
            models.CheckConstraint(
                condition=Q(max_leverage__gte=1) & Q(max_leverage__lte=MAX_LEVERAGE_CAP),
                name="risk_profile_leverage_range",
            ),
            models.CheckConstraint(condition=Q(max_open_orders__gte=1), name="risk_profile_open_orders_ge1"),
        ]

    def __str__(self) -> str:
        return f"risk profile of {self.owner}" + (" (kill switch ON)" if self.kill_switch else "")
