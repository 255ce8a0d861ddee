"""Error pages: JSON with the API's error body under /api/, HTML elsewhere."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.views import defaults

from apps.core.api.exceptions import (
    bad_request_json,
    not_found_json,
    request_too_large_json,
    server_error_json,
)


def bad_request(request, exception=None):
    """A request Django refuses before any view (a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, too
    many fields, a disallowed host)."""
    if request.path.startswith("/api/"):
        if isinstance(exception, RequestDataTooBig):
            return request_too_large_json(request, exception)
        return bad_request_json(request, exception)
    return defaults.bad_request(request, exception)


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return not_found_json(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return server_error_json(request)
    return defaults.server_error(request)
