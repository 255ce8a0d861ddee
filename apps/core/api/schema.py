"""The OpenAPI schema's one place for error answers.

Every operation documents the error statuses it can answer, each with the one
error body (``{"error": {"code", "message", "fields"}}``), so views declare
only their success responses. Installed as DRF's ``DEFAULT_SCHEMA_CLASS``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular import openapi
from rest_framework import permissions, serializers
from rest_framework_simplejwt.views import TokenViewBase

from apps.core.api.throttling import ApiRateThrottle

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
BODY_METHODS = ("POST", "PUT", "PATCH")

# apps.core.api.throttling's headers.
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {
        "schema": {"type": "integer"},
        "description": "Requests allowed per window in this operation's rate-limit scope.",
    },
    "X-RateLimit-Remaining": {
        "schema": {"type": "integer"},
        "description": "Requests left in the window, this one counted.",
    },
    "X-RateLimit-Reset": {
        "schema": {"type": "integer"},
        "description": "Unix time (seconds) when the oldest request counted leaves the window "
        "and Remaining grows again.",
    },
}
RETRY_AFTER_HEADER = {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}


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
    def _anonymous(self) -> bool:
        view = self.view
        return not view.authentication_classes and all(
            issubclass(p, permissions.AllowAny) for p in view.permission_classes
        )

    def _rate_limit_scope(self) -> str | None:
        """The scope this operation's requests count against (apps.core.api.throttling)."""
        request = SimpleNamespace(
            method=self.method, user=SimpleNamespace(is_authenticated=not self._anonymous(), pk=0)
        )
        for throttle_class in self.view.throttle_classes:
            if issubclass(throttle_class, ApiRateThrottle):
                return throttle_class().scope_for(request, self.view)
        return None

    def _error_statuses(self) -> dict[str, str]:
        view = self.view
        anonymous = self._anonymous()
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
            scope = self._rate_limit_scope()
            statuses["429"] = (
                f"Too many requests in this operation's rate-limit scope{f' ({scope})' if scope else ''}; "
                "the Retry-After header and fields.retry_after_seconds say when to retry."
            )
        return statuses

    def _get_response_headers_for_code(self, status_code, direction: str = "response") -> dict[str, Any]:
        """Every throttled operation's answers carry the rate-limit headers; a 429 also ``Retry-After``.

        Not required: an answer given before the throttle ran (a 401, a 403) has none.
        """
        headers = super()._get_response_headers_for_code(status_code, direction)
        if not self.view.throttle_classes:
            return headers
        headers = {**RATE_LIMIT_HEADERS, **headers}
        if str(status_code) == "429":
            headers["Retry-After"] = RETRY_AFTER_HEADER
        return headers

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
