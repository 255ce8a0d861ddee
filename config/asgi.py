"""ASGI entry point: HTTP through Django's WSGI handler (in a thread pool), WebSockets through Channels.

Every view and middleware of the project is synchronous. Django's own ASGI handler runs such a
stack with three thread hops per request (the sync middleware chain, back to the event loop,
the view) and runs every sync view of a process in one thread (``thread_sensitive``), so a
process served one request at a time. ``apps/core/http_bridge.py`` runs the plain WSGI
handler in a pool of threads instead: one hop per request, and requests overlap while they
wait for PostgreSQL or Redis (benchmarks/load.py). The pool's size is ``HTTP_THREADS``
(config/settings.py says why 4); a thread holds at most one database connection.
"""

from __future__ import annotations

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
