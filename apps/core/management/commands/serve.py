from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Run the ASGI web server (HTTP + WebSockets). In the embedded default (no REDIS_URL) "
        "it also runs a thread-pool Celery worker and beat in this process."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true", help="Do not start the embedded worker.")
        parser.add_argument("--concurrency", type=int, default=4)

    def handle(self, *args, host, port, no_worker, concurrency, **options):
        from channels.routing import get_default_application
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        if settings.EMBEDDED and not no_worker:
            from apps.core import embedded

            embedded.start(concurrency=concurrency)
            self.stdout.write("Background jobs: embedded thread-pool Celery worker + beat.")
        elif not settings.EMBEDDED:
            self.stdout.write("Background jobs: run `celery -A config worker` and `celery -A config beat`.")
        self.stdout.write(f"Serving on http://{host}:{port}/  (Ctrl+C to stop)")
        Server(
            application=get_default_application(),
            endpoints=build_endpoint_description_strings(host=host, port=port),
            http_timeout=None,
            websocket_handshake_timeout=10,
            application_close_timeout=10,
        ).run()
