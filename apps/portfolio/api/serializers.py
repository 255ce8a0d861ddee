from __future__ import annotations

from rest_framework import serializers

from apps.portfolio.models import EquitySnapshot


class EquitySnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = EquitySnapshot
        fields = ["id", "timestamp", "equity", "currency"]
        read_only_fields = fields


class EquityQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, help_text="ISO-8601; inclusive")
    end = serializers.DateTimeField(required=False, help_text="ISO-8601; exclusive")
    currency = serializers.CharField(required=False, max_length=20)

    def validate(self, attrs):
        if "start" in attrs and "end" in attrs and attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"end": ["Must be after start."]})
        return attrs
