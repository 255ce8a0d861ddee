"""HTTP from the ASGI server to Django's WSGI handler, in a pool of threads, with one hop per request.

Every view and middleware of the project is synchronous, so HTTP runs the plain WSGI handler
in threads (``config/asgi.py`` says why not Django's ASGI handler). a2wsgi did that with a
round trip to the event loop for each piece of the answer (its start, each body chunk, the
end; ``run_coroutine_threadsafe`` and a queue each time): under load (``benchmarks/load.py``)
half of a web process's CPU went to the event loop's side of those hand-offs.

Here an ordinary answer costs one hop: the request's body is read on the event loop first
(when it is declared and at most ``BUFFERED_BODY_MAX`` bytes), the whole WSGI call runs in a
pool thread, and the loop sends the finished answer. Two cases keep a2wsgi's way, where
buffering would be wrong:

* a larger or undeclared body is read lazily from the thread (a2wsgi's ``Body``), so Django's
  own limits (``DATA_UPLOAD_MAX_MEMORY_SIZE``) apply before anything is held in memory;
* a streaming answer (CSV exports, files) is sent chunk by chunk from its thread, which also
  runs its ``close()``. Django closes the request's database connection in ``close()``
  (``request_finished``), and that connection belongs to the thread that served the request.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
from concurrent.futures import ThreadPoolExecutor

from a2wsgi.wsgi import Body, build_environ

# A JSON request is a few hundred bytes; 1 MiB covers any form or API body the platform takes.
BUFFERED_BODY_MAX = 1024 * 1024


class WSGIBridge:
    """The ASGI ``http`` application for a WSGI app (``config/asgi.py``)."""

    def __init__(self, app, *, threads: int) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    async def __call__(self, scope, receive, send) -> None:
        loop = asyncio.get_running_loop()
        body = await _buffered_body(scope, receive)
        if body is _DISCONNECTED:
            return
        environ = build_environ(scope, Body(loop, receive) if body is None else io.BytesIO(body))
        call = functools.partial(contextvars.copy_context().run, self._respond, environ, loop, send)
        answer = await loop.run_in_executor(self.executor, call)
        if answer is not None:  # a streaming answer was sent from its thread
            start, content = answer
            await send(start)
            await send({"type": "http.response.body", "body": content})

    def _respond(self, environ, loop, send):
        """In a pool thread: the WSGI call; a whole answer to send, or None once streamed from here."""
        started = {}

        def start_response(status, headers, exc_info=None):
            started["message"] = {
                "type": "http.response.start",
                "status": int(status.split(" ", 1)[0]),
                "headers": [
                    (name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers
                ],
            }

        response = self.app(environ, start_response)
        try:
            if not getattr(response, "streaming", False):
                return started["message"], b"".join(response)

            def send_now(message):
                asyncio.run_coroutine_threadsafe(send(message), loop).result()

            send_now(started["message"])
            for chunk in response:
                if chunk:
                    send_now({"type": "http.response.body", "body": chunk, "more_body": True})
            send_now({"type": "http.response.body", "body": b""})
            return None
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()


_DISCONNECTED = object()


async def _buffered_body(scope, receive):
    """The whole body when it is declared and small (b"" when there is none); None: read it lazily."""
    length = None
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
            break
        if name == b"transfer-encoding":
            return None
    if length is None or length == 0:
        return b""
    if length > BUFFERED_BODY_MAX:
        return None
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _DISCONNECTED
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)
