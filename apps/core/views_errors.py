"""Error pages: JSON with the API's error body under /api/, HTML elsewhere."""

from __future__ import annotations

from django.views import defaults

from apps.core.api.exceptions import not_found_json, server_error_json


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return not_found_json(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return server_error_json(request)
    return defaults.server_error(request)
