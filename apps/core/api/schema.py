"""The OpenAPI schema's one place for error answers.

Every operation documents the error statuses it can answer, each with the one
error body (``{"error": {"code", "message", "fields"}}``), so views declare
only their success responses. Installed as DRF's ``DEFAULT_SCHEMA_CLASS``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular import openapi
from rest_framework import permissions, serializers
from rest_framework_simplejwt.views import TokenViewBase

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
BODY_METHODS = ("POST", "PUT", "PATCH")


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable machine-readable code, e.g. invalid, not_found")
    message = serializers.CharField(help_text="for people")
    fields = serializers.DictField(
        child=serializers.JSONField(), help_text="bad field -> its problems (every bad field at once)"
    )


class ErrorBodySerializer(serializers.Serializer):
    error = ErrorSerializer()


def _may_be_blank(field) -> bool:
    if getattr(field, "allow_blank", False):
        return True
    # A read-only field of a ModelSerializer loses allow_blank; its model field still tells.
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if model is None or not field.source or "." in field.source:
        return False
    try:
        return bool(model._meta.get_field(field.source).blank)
    except FieldDoesNotExist:
        return False


class AutoSchema(openapi.AutoSchema):
    def _error_statuses(self) -> dict[str, str]:
        view = self.view
        anonymous = not view.authentication_classes and all(
            issubclass(p, permissions.AllowAny) for p in view.permission_classes
        )
        statuses = {
            "400": "Invalid input (query or body); every bad field is listed.",
            "404": "Not found, or another user's object.",
        }
        if not anonymous or isinstance(view, TokenViewBase):
            statuses["401"] = "Not authenticated, or invalid credentials or token."
        if not anonymous:
            statuses["403"] = "Not allowed (for example a missing CSRF token with session auth)."
            statuses["503"] = "A service this request needs (exchange, worker) is unavailable."
        if self.method in WRITE_METHODS:
            statuses["409"] = "Conflicts with the object's current state."
        if self.method in BODY_METHODS:
            statuses["415"] = "Unsupported media type."
        if view.throttle_classes:
            statuses["429"] = "Too many requests; fields.retry_after_seconds says when to retry."
        return statuses

    def _insert_field_validators(self, field, schema) -> None:
        super()._insert_field_validators(field, schema)
        if "format" in schema and _may_be_blank(field):
            # "" is a valid value of a blank-allowed URL or email field but no valid "uri" or
            # "email": the format would make every empty value a schema violation.
            del schema["format"]

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status, description in self._error_statuses().items():
            if status not in responses:
                response = self._get_response_for_code(ErrorBodySerializer, status, direction=direction)
                responses[status] = {**response, "description": description}
        return dict(sorted(responses.items()))
