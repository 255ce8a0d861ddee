"""One middleware for each request's observability: its id, its metrics, its access log line."""

from __future__ import annotations

import logging
import time

from apps.core.observability import context
from apps.core.observability.logs import REDACTED, request_url_secrets
from apps.core.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

access_logger = logging.getLogger("trading.access")

REQUEST_ID_HEADER = "X-Request-ID"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ObservabilityMiddleware:
    """First in ``MIDDLEWARE``, so it sees every request and every answer.

    - keeps a sane incoming ``X-Request-ID`` or makes one, sets it on ``request.request_id``
      and in the log context, and returns it in the response's ``X-Request-ID``;
    - counts the request and its latency by route: the URL pattern's name
      (``bots-api:bot-detail``), never the raw path, so ids and tokens do not become
      labels; a path that matched no route is ``unmatched``;
    - writes one access log line (method, path with its secret parts masked, route,
      status, duration, user) on ``trading.access``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = context.request_id_from_header(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        token = context.bind(request_id=request_id, request=request)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            route = _route(request)
            method = request.method if request.method in _METHODS else "other"
            HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
            HTTP_LATENCY.labels(route, method).observe(elapsed)
            response[REQUEST_ID_HEADER] = request_id
            path = request.path
            for secret in request_url_secrets(request):
                path = path.replace(secret, REDACTED)
            access_logger.info(
                "%s %s %s %.1fms",
                request.method,
                path,
                response.status_code,
                elapsed * 1000,
                extra={
                    "method": request.method,
                    "path": path,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            return response
        finally:
            context.reset(token)


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or match.route or "unnamed"
