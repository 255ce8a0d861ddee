from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core.health import readiness


@require_GET
@never_cache
def health(request):
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def health_ready(request):
    """Readiness: database, Redis (when configured) and a Celery worker, each reported."""
    report = readiness()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
