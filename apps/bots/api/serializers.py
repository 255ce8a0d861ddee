from __future__ import annotations

from rest_framework import serializers

from apps.bots.models import Bot
from apps.core.api.serializers import StrictSerializer


class BotSerializer(serializers.ModelSerializer):
    connection = serializers.IntegerField(source="connection_id", read_only=True, allow_null=True)

    class Meta:
        model = Bot
        fields = [
            "id",
            "name",
            "strategy",
            "params",
            "exchange",
            "symbol",
            "timeframe",
            "mode",
            "connection",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class BotInputSerializer(StrictSerializer):
    """Types only; the rules (registry, connection, uniqueness) are in ``apps.bots.services``."""

    name = serializers.CharField(max_length=80)
    strategy = serializers.CharField(max_length=100)
    params = serializers.DictField(required=False, default=dict)
    exchange = serializers.CharField(max_length=40)
    symbol = serializers.CharField(max_length=60)
    timeframe = serializers.CharField(max_length=4)
    mode = serializers.ChoiceField(choices=Bot.Mode.choices, required=False, default=Bot.Mode.PAPER)
    connection = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)

    def to_service_kwargs(self) -> dict:
        data = dict(self.validated_data)
        if "connection" in data:
            data["connection_id"] = data.pop("connection")
        return data
