"""``manage.py serve``: the one way the web server runs (development, production, tests, benchmarks).

uvicorn serves ``config.asgi`` (HTTP through Django's WSGI handler in a thread pool, WebSockets
through Channels) with uvloop and httptools. Chosen over daphne by measurement
(benchmarks/realtime.py, benchmarks/load.py): a price event to 1,000 sockets cost the server
84 us of CPU per socket under daphne (Twisted re-arms epoll for every write) and 48 us
under uvicorn, and its p99 delivery fell from 407 ms to 96 ms on the same machine.

Options fixed here and why:

* ``proxy_headers=False``: the client address is the peer's; Django's ``NUM_PROXIES``
  (``TRUSTED_PROXY_COUNT``) alone decides how much of ``X-Forwarded-For`` to trust, and
  ``SECURE_PROXY_SSL_HEADER`` the scheme (docs/security.md).
* ``ws_per_message_deflate=False``: events are small JSON; compressing each one for each
  socket costs the server more than the bytes it saves.
* ``lifespan="off"``: Channels' router has no lifespan protocol.
* ``log_config=None``: logging stays as ``config/settings.py`` sets it (JSON in production);
  the access log is ``ObservabilityMiddleware``'s.

``--workers N`` runs N processes (each with its own event loop and HTTP thread pool); the
embedded default (no ``REDIS_URL``) runs one, with a thread-pool Celery worker and beat inside.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# A factory: each process builds the app, then freezes what it loaded (config/asgi.py).
APPLICATION = "config.asgi:served_application"


def server_options(*, host: str, port: int, workers: int = 1, graceful_timeout: float = 10) -> dict:
    """The uvicorn options every server of the platform runs with (see the module docstring)."""
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "loop": "uvloop",
        "http": "httptools",
        "factory": True,
        "lifespan": "off",
        "proxy_headers": False,
        "ws_per_message_deflate": False,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": graceful_timeout,
    }


class Command(BaseCommand):
    help = (
        "Run the web server (uvicorn: HTTP + WebSockets). In the embedded default (no REDIS_URL) "
        "it also runs a thread-pool Celery worker and beat in this process."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=1, help="Server processes (not in embedded mode).")
        parser.add_argument("--no-worker", action="store_true", help="Do not start the embedded worker.")
        parser.add_argument("--concurrency", type=int, default=4)
        parser.add_argument(
            "--graceful-timeout",
            type=float,
            default=10,
            help="Seconds a stopping server waits for running requests and sockets to finish.",
        )

    def handle(self, *args, host, port, workers, no_worker, concurrency, graceful_timeout, **options):
        import uvicorn

        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        if settings.EMBEDDED and not no_worker:
            if workers > 1:
                raise CommandError(
                    "The embedded default runs one server process (its jobs run inside it); "
                    "set REDIS_URL to run several."
                )
            from apps.core import embedded

            embedded.start(concurrency=concurrency)
            self.stdout.write("Background jobs: embedded thread-pool Celery worker + beat.")
        elif not settings.EMBEDDED:
            self.stdout.write("Background jobs: run `celery -A config worker` and `celery -A config beat`.")
        self.stdout.write(f"Serving on http://{host}:{port}/  ({workers} process(es); Ctrl+C to stop)")
        self.stdout.flush()
        uvicorn.run(
            APPLICATION,
            **server_options(host=host, port=port, workers=workers, graceful_timeout=graceful_timeout),
        )
