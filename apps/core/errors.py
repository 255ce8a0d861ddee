"""Domain errors: raised by services, turned into HTTP answers by the API layer.

A service raises ``DomainError`` subclasses (or instances) carrying a stable
``code``, an HTTP ``status`` and a message written for the user. The API's
exception handler renders them as ``{"error": {"code", "message", "fields"}}``.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"
    status = 400
    default_message = "The request could not be processed."

    def __init__(
        self, message: str | None = None, *, fields: dict[str, Any] | None = None, code: str | None = None
    ):
        self.message = message or self.default_message
        self.fields = fields or {}
        if code:
            self.code = code
        super().__init__(self.message)


class ValidationFailed(DomainError):
    code = "invalid"
    status = 400
    default_message = "Invalid input."


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class Conflict(DomainError):
    code = "conflict"
    status = 409
    default_message = "The request conflicts with the current state."


class ServiceUnavailable(DomainError):
    code = "unavailable"
    status = 503
    default_message = "A service this request needs is unavailable; try again shortly."


class QuotaExceeded(Conflict):
    """A per-user quota (concurrent research jobs, running bots, bots) would be exceeded."""

    code = "quota_exceeded"
    default_message = "A limit of your account would be exceeded."
