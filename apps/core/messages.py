"""Django's messages middleware, with the storage made only when a request uses it.

``MessageMiddleware`` builds the storage for every request (a cookie signer and a session
lookup), though only the pages that flash a message or show them use it; the API and the
polled reads never do. Here ``request._messages`` is made on first use; a request that never
touched it has nothing to store, so its response is left as Django's storage would leave it
(``CookieStorage`` and ``SessionStorage`` write only what was added or read).
"""

from __future__ import annotations

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.utils.functional import SimpleLazyObject, empty


class LazyMessageMiddleware(MessageMiddleware):
    def process_request(self, request) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        stored = getattr(request, "_messages", None)
        if isinstance(stored, SimpleLazyObject) and stored._wrapped is empty:
            return response  # never used: nothing added, nothing read
        return super().process_response(request, response)
