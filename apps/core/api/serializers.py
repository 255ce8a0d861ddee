"""Input serializers shared by every app's API.

``StrictSerializer`` is the one way an endpoint refuses fields it does not know:
a misspelt setting (``stop_los``) on an order or a bot must be an error, not
silently ignored. Unknown keys are reported together with every other bad
field, in the one error body.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.settings import api_settings

UNKNOWN_FIELD = "Unknown field."
NOT_AN_OBJECT = "Expected a JSON object."


class StrictMixin:
    """Reject keys that are not declared fields (read-only fields count as unknown input)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [NOT_AN_OBJECT]})
        writable = {name for name, field in self.fields.items() if not field.read_only}
        unknown = {key: [UNKNOWN_FIELD] for key in data if key not in writable}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            detail = (
                exc.detail
                if isinstance(exc.detail, dict)
                else {api_settings.NON_FIELD_ERRORS_KEY: exc.detail}
            )
            raise serializers.ValidationError({**unknown, **detail}) from exc
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class StrictSerializer(StrictMixin, serializers.Serializer):
    """An input serializer (types only) that refuses unknown fields."""
