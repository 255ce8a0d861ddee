"""One error body for every API failure: ``{"error": {"code", "message", "fields"}}``."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import DomainError

logger = logging.getLogger(__name__)

# How long a client should wait before retrying a request that met an outage.
OUTAGE_RETRY_AFTER_SECONDS = 5


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail: Any) -> Any:
    """ErrorDetail trees -> plain lists/dicts of strings."""
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _first_message(fields: Any) -> str | None:
    if isinstance(fields, dict):
        for key, value in fields.items():
            message = _first_message(value)
            if message:
                return message if key == "non_field_errors" else f"{key}: {message}"
    elif isinstance(fields, list):
        for item in fields:
            message = _first_message(item)
            if message:
                return message
    elif fields:
        return str(fields)
    return None


def _unavailable(exc: Exception) -> str | None:
    """What is down when ``exc`` is a lost dependency (database, job queue, Redis), else None."""
    import kombu.exceptions
    import redis.exceptions
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return "The database"
    if isinstance(exc, kombu.exceptions.OperationalError):
        return "The job queue"
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "The cache"
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
    if (what := _unavailable(exc)) is not None:
        # A restart or outage, not a bug: 503 with the error body, so clients retry (docs/faults.md).
        logger.warning("503 on %s: %r", context["request"].path, exc)
        response = Response(
            error_body("service_unavailable", f"{what} is unavailable right now. Try again shortly."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = str(OUTAGE_RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(fields)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django logs it and answers 500

    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = _flatten(detail)
        message = _first_message(fields) or "Invalid input."
        response.data = error_body("invalid", message, fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        if isinstance(detail, dict) and "detail" in detail:
            # simplejwt's token errors: {"detail": ..., "code": "token_not_valid", "messages": [...]}
            code = str(detail.get("code") or getattr(exc, "default_code", "error"))
            detail = detail["detail"]
        if isinstance(code, (dict, list)):
            code = getattr(exc, "default_code", None) or "error"
        message = _first_message(_flatten(detail)) or "Request failed."
        response.data = error_body(str(code), message)
        if isinstance(exc, exceptions.Throttled) and exc.wait:
            response.data["error"]["fields"] = {"retry_after_seconds": int(exc.wait)}
    return response


def json_error_view(code: str, message: str, status_code: int):
    from django.http import JsonResponse
    from django.views.decorators.csrf import csrf_exempt

    # Exempt: the answer is the same error whatever the method, and a POST to an unknown
    # /api/ path must get this JSON 404, not the CSRF middleware's HTML 403.
    @csrf_exempt
    def view(request, exception=None):
        return JsonResponse(error_body(code, message), status=status_code)

    return view


bad_request_json = json_error_view(
    "bad_request", "The request could not be read.", status.HTTP_400_BAD_REQUEST
)
request_too_large_json = json_error_view(
    "request_too_large",
    "The request body is larger than the server accepts.",
    status.HTTP_400_BAD_REQUEST,  # Django's own status for it; every API operation documents 400
)
not_found_json = json_error_view("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
server_error_json = json_error_view(
    "server_error", "An unexpected error occurred; it has been logged.", status.HTTP_500_INTERNAL_SERVER_ERROR
)
