from __future__ import annotations

from datetime import UTC, datetime

from rest_framework import serializers

from apps.core.api.serializers import ModelSerializer, StrictMixin, StrictSerializer
from apps.exchanges.catalog import exchange_choices
from apps.marketdata.models import ImportJob, Market, Subscription
from apps.marketdata.timeframes import TIMEFRAMES

MAX_CANDLES = 5000


class FlexibleDateTimeField(serializers.DateTimeField):
    """ISO-8601 or integer milliseconds since the epoch (what charts send)."""

    def to_internal_value(self, value):
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            try:
                return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
            except (OverflowError, OSError, ValueError):
                self.fail("invalid", format="ISO-8601 or milliseconds")
        return super().to_internal_value(value)


class TimeframeField(serializers.CharField):
    def to_internal_value(self, value):
        value = super().to_internal_value(value)
        if value not in TIMEFRAMES:
            raise serializers.ValidationError(
                f"Unknown timeframe {value!r}; use one of {', '.join(TIMEFRAMES)}."
            )
        return value


class MarketQuerySerializer(serializers.Serializer):
    exchange = serializers.SlugField(default="binance", max_length=40)
    symbol = serializers.CharField(max_length=60)


class CandleQuerySerializer(MarketQuerySerializer):
    timeframe = TimeframeField(default="1h")
    start = FlexibleDateTimeField(required=False, default=None, allow_null=True)
    end = FlexibleDateTimeField(required=False, default=None, allow_null=True)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_CANDLES, default=1000)

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"start": ["start must not be after end."]})
        return attrs


class OhlcQuerySerializer(CandleQuerySerializer):
    live = serializers.BooleanField(
        default=False,
        help_text="End at the current price (the replay feed's moment offline), the last candle forming at it; "
        "the answer then carries the ticker it used. Not with start/end.",
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs["live"] and (attrs.get("start") or attrs.get("end")):
            raise serializers.ValidationError(
                {"live": ["live ends at the current price; leave out start and end."]}
            )
        return attrs


class GapQuerySerializer(MarketQuerySerializer):
    timeframe = TimeframeField(default="1h")
    start = FlexibleDateTimeField(required=False, default=None, allow_null=True)
    end = FlexibleDateTimeField(required=False, default=None, allow_null=True)

    validate = CandleQuerySerializer.validate


class DepthQuerySerializer(MarketQuerySerializer):
    limit = serializers.IntegerField(min_value=1, max_value=500, default=20)


class MarketSerializer(ModelSerializer):
    exchange = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Market
        fields = [
            "id", "exchange", "symbol", "exchange_symbol", "base", "quote", "type", "precision_amount",
            "precision_price", "min_amount", "min_notional", "maker_fee", "taker_fee", "active", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class SubscriptionSerializer(StrictMixin, ModelSerializer):
    """A watchlist entry; as input it refuses unknown fields (and read-only ones such as ``id``)."""

    exchange = serializers.ChoiceField(choices=exchange_choices(), write_only=True, default="binance")
    symbol = serializers.CharField(write_only=True, max_length=60)
    market = MarketSerializer(read_only=True)
    timeframe = TimeframeField(default="1h")

    class Meta:
        model = Subscription
        fields = ["id", "exchange", "symbol", "market", "timeframe", "note", "created_at"]
        read_only_fields = ["id", "market", "created_at"]


class SubscriptionUpdateSerializer(StrictMixin, ModelSerializer):
    """PUT replaces both fields, so both are required (``note`` may be blank); PATCH any of them."""

    timeframe = TimeframeField()

    class Meta:
        model = Subscription
        fields = ["timeframe", "note"]
        extra_kwargs = {"note": {"required": True, "allow_blank": True}}


class ImportJobSerializer(ModelSerializer):
    """An import/download job, in the states every job of the platform has (as backtests)."""

    error = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [
            "id", "kind", "exchange", "symbol", "timeframe", "params", "status", "progress", "attempt",
            "cancel_requested", "inserted", "skipped", "message", "error", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_error(self, job: ImportJob) -> dict | None:
        return job.error_info


class ImportJobCreateSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=ImportJob.Kind.choices)
    exchange = serializers.ChoiceField(choices=exchange_choices(), default="binance")
    symbol = serializers.CharField(max_length=60)
    timeframe = TimeframeField()
    start = FlexibleDateTimeField(required=False, allow_null=True, default=None)
    end = FlexibleDateTimeField(required=False, allow_null=True, default=None)
    file = serializers.FileField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        if attrs["kind"] == ImportJob.Kind.IMPORT and not attrs.get("file"):
            raise serializers.ValidationError({"file": ["An import needs a candle file."]})
        CandleQuerySerializer.validate(self, attrs)
        return attrs


class TimeframesSerializer(serializers.Serializer):
    """The timeframes a job (and the candle store) accepts."""

    timeframes = serializers.ListField(child=serializers.CharField())
