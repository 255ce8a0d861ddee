"""Portfolio API serializers: strict query input, and the shape of each answer."""

from __future__ import annotations

from rest_framework import serializers

from apps.core.api.serializers import ModelSerializer, StrictSerializer
from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES
from apps.portfolio.models import CashFlow, EquitySnapshot

MAX_RANGE_DAYS = 3660


def money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, coerce_to_string=True, **kwargs
    )


class EquitySnapshotSerializer(ModelSerializer):
    class Meta:
        model = EquitySnapshot
        fields = ["id", "timestamp", "equity", "cash", "positions_value", "currency", "tier"]
        read_only_fields = fields


class EquityQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, help_text="ISO-8601; inclusive")
    end = serializers.DateTimeField(required=False, help_text="ISO-8601; exclusive")
    currency = serializers.CharField(required=False, max_length=20)

    def validate(self, attrs):
        if "start" in attrs and "end" in attrs and attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"end": ["Must be after start."]})
        return attrs


# ------------------------------------------------------------------ query input
class AccountQuerySerializer(StrictSerializer):
    account = serializers.RegexField(
        r"^(paper|live):\d{1,18}$",
        required=False,
        help_text='one account: "paper:<id>" or "live:<connection id>"; all accounts when absent',
        error_messages={"invalid": 'Expected "paper:<id>" or "live:<id>".'},
    )


class RangeQuerySerializer(AccountQuerySerializer):
    start = serializers.DateTimeField(required=False, help_text="ISO-8601; inclusive")
    end = serializers.DateTimeField(required=False, help_text="ISO-8601; exclusive")
    days = serializers.ChoiceField(
        choices=[30, 90, 365], required=False, help_text="the last N days (instead of start)"
    )

    def validate(self, attrs):
        errors: dict[str, list[str]] = {}
        if "days" in attrs and "start" in attrs:
            errors["days"] = ["Give days or start, not both."]
        start, end = attrs.get("start"), attrs.get("end")
        if start and end:
            if start >= end:
                errors["end"] = ["Must be after start."]
            elif (end - start).days > MAX_RANGE_DAYS:
                errors["start"] = [f"The range may span at most {MAX_RANGE_DAYS} days."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class DistributionQuerySerializer(RangeQuerySerializer):
    bins = serializers.IntegerField(required=False, min_value=2, max_value=200, default=20)


class ComparisonQuerySerializer(RangeQuerySerializer):
    by = serializers.ChoiceField(choices=["bot", "strategy"], default="bot")


class PagedRangeQuerySerializer(RangeQuerySerializer):
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)


# ------------------------------------------------------------------ output
class SummarySerializer(serializers.Serializer):
    currency = serializers.CharField()
    as_of = serializers.DateTimeField(allow_null=True)
    equity = money(allow_null=True)
    cash = money(allow_null=True)
    positions_value = money(allow_null=True)
    today_pnl = money(
        allow_null=True, help_text="equity change since the start of the UTC day, flows excluded"
    )
    total_pnl = money(allow_null=True, help_text="equity minus net deposits")
    net_deposits = money(allow_null=True)
    accounts = serializers.IntegerField()


class AssetAmountSerializer(serializers.Serializer):
    asset = serializers.CharField()
    amount = money()
    value = money()
    price = money(required=False)


class AccountBalancesSerializer(serializers.Serializer):
    account = serializers.CharField()
    label = serializers.CharField()
    as_of = serializers.DateTimeField()
    equity = money()
    cash = money()
    positions_value = money()
    assets = AssetAmountSerializer(many=True)
    unpriced = serializers.ListField(child=serializers.CharField())


class BalancesSerializer(serializers.Serializer):
    currency = serializers.CharField()
    accounts = AccountBalancesSerializer(many=True)
    assets = AssetAmountSerializer(many=True)


class ExposureRowSerializer(serializers.Serializer):
    asset = serializers.CharField()
    value = serializers.FloatField()
    share = serializers.FloatField(allow_null=True)


class PortfolioExposureSerializer(serializers.Serializer):
    currency = serializers.CharField()
    equity = serializers.FloatField()
    assets = ExposureRowSerializer(many=True)


class EquityCurveSerializer(serializers.Serializer):
    currency = serializers.CharField()
    timestamps = serializers.ListField(child=serializers.DateTimeField())
    equity = serializers.ListField(child=serializers.FloatField())
    index = serializers.ListField(
        child=serializers.FloatField(), help_text="time-weighted equity: deposits and withdrawals removed"
    )


class DrawdownSerializer(serializers.Serializer):
    timestamps = serializers.ListField(child=serializers.DateTimeField())
    drawdown = serializers.ListField(child=serializers.FloatField())
    max_drawdown = serializers.FloatField(allow_null=True)


class DayPnlSerializer(serializers.Serializer):
    day = serializers.DateField()
    close = serializers.FloatField()
    flows = serializers.FloatField()
    pnl = serializers.FloatField()


class DailyPnlSerializer(serializers.Serializer):
    currency = serializers.CharField()
    days = DayPnlSerializer(many=True)
    total = serializers.FloatField()


class MonthPnlSerializer(serializers.Serializer):
    month = serializers.CharField()
    pnl = serializers.FloatField()


class MonthlyPnlSerializer(serializers.Serializer):
    currency = serializers.CharField()
    months = MonthPnlSerializer(many=True)


class PerformanceSerializer(serializers.Serializer):
    currency = serializers.CharField()
    benchmark = serializers.CharField()
    metrics = serializers.DictField(child=serializers.FloatField(allow_null=True))


class TradingMetricsSerializer(serializers.Serializer):
    metrics = serializers.DictField(child=serializers.FloatField(allow_null=True))


class DistributionSerializer(serializers.Serializer):
    edges = serializers.ListField(child=serializers.FloatField())
    counts = serializers.ListField(child=serializers.IntegerField())


class ComparisonRowSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    net_pnl = serializers.FloatField()
    total_trades = serializers.IntegerField()
    win_rate = serializers.FloatField(allow_null=True)
    profit_factor = serializers.FloatField(allow_null=True)
    expectancy = serializers.FloatField(allow_null=True)
    avg_trade_return = serializers.FloatField(allow_null=True)
    total_fees = serializers.FloatField(allow_null=True)


class ComparisonSerializer(serializers.Serializer):
    by = serializers.CharField()
    rows = ComparisonRowSerializer(many=True)


class MonthlyStrategyRowSerializer(serializers.Serializer):
    month = serializers.CharField()
    strategy = serializers.CharField()
    net_pnl = serializers.FloatField()
    trades = serializers.IntegerField()
    best_symbol = serializers.CharField()
    best_symbol_pnl = serializers.FloatField()


class MonthlyStrategySerializer(serializers.Serializer):
    rows = MonthlyStrategyRowSerializer(many=True)


class CashFlowSerializer(ModelSerializer):
    account = serializers.CharField(source="account_key")

    class Meta:
        model = CashFlow
        fields = ["id", "account", "timestamp", "kind", "amount", "currency", "note"]
        read_only_fields = fields


class AccountSerializer(serializers.Serializer):
    account = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.ChoiceField(choices=["paper", "live"])


TRADE_CSV_FIELDS = (
    "account",
    "symbol",
    "side",
    "entry_time",
    "exit_time",
    "pnl",
    "fees",
    "return_pct",
    "duration",
    "bot",
    "strategy",
)
DAILY_CSV_FIELDS = ("day", "close", "flows", "pnl")
