"""``/metrics``: the Prometheus exposition, for a scraper holding ``METRICS_TOKEN``."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core.api.exceptions import error_body
from apps.core.observability.metrics import render


@require_GET
@never_cache
def metrics(request):
    """Disabled (404) while ``METRICS_TOKEN`` is unset; else ``Authorization: Bearer <token>``
    or 401. Not an API endpoint (scraped by Prometheus, not used by clients), so it is
    outside ``/api/`` and the OpenAPI schema."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        response = JsonResponse(
            error_body("not_authenticated", "A valid metrics token is required (Authorization: Bearer)."),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = render()
    return HttpResponse(body, content_type=content_type)
