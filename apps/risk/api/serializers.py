from __future__ import annotations

from rest_framework import serializers

from apps.core.api.serializers import StrictSerializer
from apps.risk.models import RiskProfile


class RiskProfileSerializer(serializers.ModelSerializer):
    # null until the user first saves limits: the defaults are read from an unsaved profile.
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = RiskProfile
        fields = [
            "currency",
            "max_position_notional",
            "max_daily_loss",
            "max_leverage",
            "max_open_orders",
            "kill_switch",
            "updated_at",
        ]
        read_only_fields = fields


class RiskProfileInputSerializer(StrictSerializer):
    """PUT replaces every limit, so every field is required (``null`` = no limit where allowed).

    Types only; the limits' rules are in ``apps.risk.services.validate_limits``.
    """

    currency = serializers.CharField(max_length=20)
    max_position_notional = serializers.DecimalField(max_digits=None, decimal_places=None, allow_null=True)
    max_daily_loss = serializers.DecimalField(max_digits=None, decimal_places=None, allow_null=True)
    max_leverage = serializers.DecimalField(max_digits=None, decimal_places=None)
    max_open_orders = serializers.IntegerField()
    kill_switch = serializers.BooleanField()
