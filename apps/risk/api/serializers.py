from __future__ import annotations

from rest_framework import serializers

from apps.core.api.serializers import ModelSerializer, StrictSerializer
from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES
from apps.risk.models import AlertSeverity, LimitAction, LimitKind, RiskAlert, RiskLimit, RiskProfile


def _amount(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, **kwargs)


class RiskProfileSerializer(ModelSerializer):
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
    kill_switch = serializers.BooleanField(
        help_text="a change engages or releases the kill switch as kill-switch/engage/ and release/ do"
    )


# ------------------------------------------------------------------ limits
class RiskLimitSerializer(ModelSerializer):
    bot = serializers.IntegerField(source="bot_id", read_only=True, allow_null=True)
    paper_account = serializers.IntegerField(source="paper_account_id", read_only=True, allow_null=True)
    connection = serializers.IntegerField(source="connection_id", read_only=True, allow_null=True)
    # Plain strings in the schema: enums named "kind"/"action" collide with other apps' enums.
    kind = serializers.CharField(read_only=True, help_text=f"one of: {', '.join(LimitKind.values)}")
    action = serializers.CharField(read_only=True, help_text=f"one of: {', '.join(LimitAction.values)}")

    class Meta:
        model = RiskLimit
        fields = [
            "id", "kind", "value", "action", "bot", "paper_account", "connection", "symbol", "asset",
            "cooldown_minutes", "enabled", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class RiskLimitInputSerializer(StrictSerializer):
    """Types only; the rules (value ranges per kind, scope ownership) are in ``apps.risk.services``.

    ``bot``, ``paper_account`` and ``connection`` are ids of the user's own objects (or null).
    """

    kind = serializers.CharField(max_length=20, help_text=f"one of: {', '.join(LimitKind.values)}")
    value = serializers.DecimalField(max_digits=None, decimal_places=None)
    action = serializers.CharField(
        max_length=16, required=False, help_text=f"one of: {', '.join(LimitAction.values)}; default reject"
    )
    bot = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    paper_account = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    connection = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    symbol = serializers.CharField(max_length=60, required=False, allow_blank=True)
    asset = serializers.CharField(max_length=20, required=False, allow_blank=True)
    cooldown_minutes = serializers.IntegerField(required=False)
    enabled = serializers.BooleanField(required=False)


# ------------------------------------------------------------------ alerts
class RiskAlertSerializer(ModelSerializer):
    limit = serializers.IntegerField(source="limit_id", read_only=True, allow_null=True)
    severity = serializers.CharField(read_only=True, help_text=f"one of: {', '.join(AlertSeverity.values)}")
    active = serializers.BooleanField(read_only=True)

    class Meta:
        model = RiskAlert
        fields = [
            "id", "limit", "key", "kind", "severity", "message", "data", "action", "occurrences", "active",
            "created_at", "last_seen_at", "resolved_at", "acknowledged_at",
        ]  # fmt: skip
        read_only_fields = fields


class RiskAlertFilterSerializer(StrictSerializer):
    """The alert list's query: every filter optional; unknown parameters are refused."""

    severity = serializers.ChoiceField(choices=AlertSeverity.choices, required=False)
    kind = serializers.CharField(max_length=20, required=False)
    state = serializers.ChoiceField(
        choices=["active", "resolved", "acknowledged", "unacknowledged"], required=False
    )
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)


# --------------------------------------------------------------- overview
class RiskOverviewSerializer(serializers.Serializer):
    currency = serializers.CharField()
    equity = _amount(allow_null=True)
    peak_equity = _amount(allow_null=True)
    gross_exposure = _amount()
    net_exposure = _amount()
    leverage = serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True)
    margin_level = serializers.DecimalField(max_digits=16, decimal_places=4, allow_null=True)
    liquidation_distance = serializers.DecimalField(
        max_digits=12, decimal_places=6, allow_null=True, help_text="nearest liquidation, fraction of mark"
    )
    daily_pnl = _amount()
    daily_loss_limit = _amount(allow_null=True)
    drawdown = serializers.DecimalField(max_digits=12, decimal_places=6, help_text="fraction below peak")
    var_95 = _amount(allow_null=True, help_text="one-day historical VaR at 95%, in currency")
    var_99 = _amount(allow_null=True)
    cvar_95 = _amount(allow_null=True)
    cvar_99 = _amount(allow_null=True)
    var_days = serializers.IntegerField(help_text="daily returns behind the VaR (0: not enough prices)")
    score = serializers.IntegerField(min_value=1, max_value=100)
    components = serializers.DictField(child=serializers.FloatField(), help_text="score parts, each 0..1")
    kill_switch = serializers.BooleanField()
    open_positions = serializers.IntegerField()
    open_orders = serializers.IntegerField()
    active_alerts = serializers.IntegerField()
    snapshot_at = serializers.DateTimeField(allow_null=True)
    computed_at = serializers.DateTimeField()


class ExposureAssetSerializer(serializers.Serializer):
    asset = serializers.CharField()
    value = _amount(help_text="signed position value in currency")
    with_open_orders = _amount(help_text="signed value if every open order filled")
    fraction_of_equity = serializers.DecimalField(max_digits=16, decimal_places=6, allow_null=True)


class ExposurePositionSerializer(serializers.Serializer):
    account = serializers.CharField(help_text="paper:<id> or live:<id>")
    symbol = serializers.CharField()
    size = _amount(help_text="signed: + long, - short")
    mark_price = _amount()
    value = _amount()
    leverage = serializers.DecimalField(max_digits=8, decimal_places=2)
    liquidation_price = _amount(allow_null=True)


class ExposureSerializer(serializers.Serializer):
    currency = serializers.CharField()
    equity = _amount(allow_null=True)
    assets = ExposureAssetSerializer(many=True)
    positions = ExposurePositionSerializer(many=True)
