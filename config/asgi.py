"""ASGI entry point: HTTP through Django's WSGI handler (in a thread pool), WebSockets through Channels.

Every view and middleware of the project is synchronous. Django's own ASGI handler runs such a
stack with three thread hops per request (the sync middleware chain, back to the event loop,
the view) and runs every sync view of a process in one thread (``thread_sensitive``), so a
process served one request at a time. ``apps/core/http_bridge.py`` runs the plain WSGI
handler in a pool of threads instead: one hop per request, and requests overlap while they
wait for PostgreSQL or Redis (benchmarks/load.py). The pool's size is ``HTTP_THREADS``
(config/settings.py says why 2); a thread holds at most one database connection.
"""

from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before anything imports models.
django_wsgi_app = get_wsgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.core.http_bridge import WSGIBridge  # noqa: E402
from apps.core.ws_auth import AuthStack  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": WSGIBridge(django_wsgi_app, threads=settings.HTTP_THREADS),
        "websocket": AllowedHostsOriginValidator(AuthStack(URLRouter(websocket_urlpatterns))),
    }
)


def served_application():
    """``application``, for a process of ``manage.py serve`` (uvicorn calls this in each one).

    What the process has loaded by now (Django, the apps, and every view: the URLconf is
    resolved here rather than by the first request) lives as long as the process, so it is
    frozen out of the garbage collector's full collections (``gc.freeze``), which then walk only
    what was allocated since. Unfrozen, a full collection walked about 350,000 objects with the
    process's requests all stopped: 170 ms on the 2-core test machine, about every 1,200
    requests of a process, and the backlog each one left under load was most of the reads'
    p95 (``benchmarks/load.py``, docs/faults.md).
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module now
    gc.collect()
    gc.freeze()
    return application
