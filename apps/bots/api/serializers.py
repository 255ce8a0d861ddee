from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.bots.models import Bot, BotEvent, BotReplay
from apps.core.api.serializers import ModelSerializer, StrictSerializer
from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES


class BotWebhookInfoSerializer(serializers.Serializer):
    url = serializers.CharField(
        help_text="the signal URL: in full only in the answer that created or rotated it, masked after"
    )
    masked = serializers.BooleanField()
    token_hint = serializers.CharField()
    rotated_at = serializers.DateTimeField()


class BotSerializer(ModelSerializer):
    connection = serializers.IntegerField(source="connection_id", read_only=True, allow_null=True)
    webhook = serializers.SerializerMethodField(help_text="a webhook bot's signal URL (null otherwise)")
    strategy_id = serializers.IntegerField(source="user_strategy_id", read_only=True, allow_null=True)
    strategy_version = serializers.IntegerField(source="code_version", read_only=True, allow_null=True)

    class Meta:
        model = Bot
        fields = [
            "id",
            "name",
            "source",
            "webhook",
            "strategy_kind",
            "strategy",
            "strategy_id",
            "strategy_version",
            "code_hash",
            "params",
            "exchange",
            "symbol",
            "timeframe",
            "mode",
            "connection",
            "allocated_capital",
            "leverage",
            "margin_mode",
            "sizing",
            "stop_loss",
            "take_profit",
            "trailing_stop",
            "warmup",
            "status",
            "error",
            "last_candle_ms",
            "failures",
            "retry_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(BotWebhookInfoSerializer(allow_null=True))
    def get_webhook(self, bot: Bot) -> dict | None:
        from apps.bots.services.signals import webhook_masked_path, webhook_path

        webhook = getattr(bot, "webhook", None) if bot.source == Bot.Source.WEBHOOK else None
        if webhook is None:
            return None
        token = getattr(bot, "webhook_token", None)  # set only by the service that made it
        path = webhook_path(token) if token else webhook_masked_path(webhook)
        request = self.context.get("request")
        return {
            "url": request.build_absolute_uri(path) if request else path,
            "masked": token is None,
            "token_hint": webhook.token_hint,
            "rotated_at": webhook.rotated_at,
        }


class BotEventSerializer(ModelSerializer):
    # A plain string in the schema: an enum here would collide with the other "kind" enums.
    kind = serializers.CharField(read_only=True, help_text=f"one of: {', '.join(BotEvent.Kind.values)}")

    class Meta:
        model = BotEvent
        fields = ["id", "kind", "message", "data", "created_at"]
        read_only_fields = fields


class BotInputSerializer(StrictSerializer):
    """Types only; the rules (strategy schema, connection, uniqueness) are in ``apps.bots.services``.

    The strategy is either ``strategy`` (a built-in name) or ``strategy_id`` with an
    optional ``strategy_version`` (default: the latest, pinned), as for backtests.
    A live bot needs ``connection`` (with trading permission) and ``confirm_live: true``.
    A futures bot (``symbol`` such as ``BTC/USDT:USDT``) takes ``leverage`` and ``margin_mode``
    and may go short.
    """

    name = serializers.CharField(max_length=80)
    source = serializers.ChoiceField(
        choices=Bot.Source.choices,
        required=False,
        help_text="webhook: a signal bot (no strategy; orders from alerts posted to its secret URL)",
    )
    strategy = serializers.CharField(max_length=100, required=False, allow_blank=True)
    strategy_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    strategy_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    params = serializers.DictField(required=False, default=dict)
    exchange = serializers.CharField(max_length=40)
    symbol = serializers.CharField(max_length=60)
    timeframe = serializers.CharField(max_length=4)
    mode = serializers.ChoiceField(choices=Bot.Mode.choices, required=False, default=Bot.Mode.PAPER)
    connection = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    confirm_live = serializers.BooleanField(required=False, default=False)
    allocated_capital = serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, required=False
    )
    leverage = serializers.DecimalField(
        max_digits=6,
        decimal_places=2,
        required=False,
        help_text="futures only (a BASE/QUOTE:SETTLE symbol): 1 up to the market's maximum (default 1)",
    )
    margin_mode = serializers.ChoiceField(
        choices=Bot.MarginMode.choices, required=False, help_text="futures only (default isolated)"
    )
    sizing = serializers.DictField(required=False, allow_null=True)
    stop_loss = serializers.FloatField(required=False, allow_null=True)
    take_profit = serializers.FloatField(required=False, allow_null=True)
    trailing_stop = serializers.FloatField(required=False, allow_null=True)
    warmup = serializers.IntegerField(required=False, allow_null=True)

    def to_internal_value(self, data):
        missing = {}
        if (
            not self.partial
            and isinstance(data, dict)
            and data.get("source") != Bot.Source.WEBHOOK
            and data.get("strategy") in (None, "")
            and data.get("strategy_id") in (None, "")
        ):
            missing = {"strategy": ["Give a built-in strategy name, or strategy_id of your own."]}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({**missing, **exc.detail}) from exc
        if missing:
            raise serializers.ValidationError(missing)
        return value

    def to_service_kwargs(self) -> dict:
        data = dict(self.validated_data)
        if "connection" in data:
            data["connection_id"] = data.pop("connection")
        return data


class BotStopSerializer(StrictSerializer):
    close_position = serializers.BooleanField(required=False, default=False)


class BotReplayInputSerializer(StrictSerializer):
    """The period to replay: open times of the first and the last candle (ISO 8601, UTC if naive)."""

    start = serializers.DateTimeField()
    end = serializers.DateTimeField()

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": ["must be after start"]})
        return attrs


class BotReplaySerializer(ModelSerializer):
    bot = serializers.IntegerField(source="bot_id", read_only=True)
    strategy_version = serializers.IntegerField(
        source="strategy_version.version",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="a user strategy's version the replay runs (null for a built-in)",
    )
    error = serializers.SerializerMethodField()
    result = serializers.JSONField(
        read_only=True,
        help_text="when completed: trades, open_position, metrics (the engine's), equity "
        "(start, end, min, max, curve of [time ms, equity]), config (the backtest it equals), "
        "candles, seconds",
    )

    class Meta:
        model = BotReplay
        fields = [
            "id",
            "bot",
            "status",
            "progress",
            "attempt",
            "start",
            "end",
            "candles",
            "strategy",
            "strategy_version",
            "params",
            "error",
            "result",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_error(self, obj: BotReplay) -> dict | None:
        return obj.error_info


class BotPositionSummarySerializer(serializers.Serializer):
    side = serializers.ChoiceField(choices=["long", "short", "flat"])
    size = serializers.FloatField(help_text="in the base asset")
    average_entry = serializers.FloatField(allow_null=True)


class BotPerformanceSerializer(serializers.Serializer):
    """The engine's metrics (``apps.backtests.engine.metrics``) on the bot's fills, and its P&L.

    P&L figures are in ``currency`` (the market's quote) and net of fees;
    ``unrealized_pnl`` marks the open position at ``last_price`` (the newest
    stored candle's close, or the last fill's price).
    """

    bot = serializers.IntegerField()
    currency = serializers.CharField()
    allocated_capital = serializers.FloatField()
    fills = serializers.IntegerField(help_text="how many fills the figures are built from")
    last_price = serializers.FloatField(allow_null=True)
    position = BotPositionSummarySerializer()
    realized_pnl = serializers.FloatField()
    unrealized_pnl = serializers.FloatField()
    total_pnl = serializers.FloatField(help_text="realized + unrealized, net of fees")
    fees = serializers.FloatField()
    metrics = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text="every name of METRIC_NAMES (win_rate, total_trades, max_drawdown, sharpe_ratio, ...); "
        "None where undefined",
    )
    equity = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="[timestamp_ms, equity] at each candle's close (the newest 500)",
    )
