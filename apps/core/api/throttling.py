"""API rate limits: one throttle for every DRF view, by scope, reported in ``X-RateLimit-*`` headers.

Every API view is throttled by ``ApiRateThrottle`` (DRF's
``DEFAULT_THROTTLE_CLASSES``). A request counts against one *scope*, and each
scope has its own rate (``<SCOPE>_THROTTLE_RATE`` in settings, e.g.
``TRADING_THROTTLE_RATE = "60/minute"``, read on every request so tests and
deployments change it without a restart of the class):

* ``user``: the default for a signed-in user, ``anon``: the default otherwise;
* stricter scopes that views choose for some of their actions, with
  ``throttle_scopes = {"create": "trading"}`` (keys: viewset action names or
  lower-case HTTP methods) or ``throttle_scope = "login"`` for every method.

The identity a scope counts per is the user's id when signed in and the client
address otherwise, and always the address for ``login`` (credentials are
guessed from one address under many names); a subclass may choose another
(the signal webhook's token). The client address is DRF's: ``REMOTE_ADDR``, or
with ``TRUSTED_PROXY_COUNT`` proxies the address the nearest one appended to
``X-Forwarded-For``.

The window slides, as in DRF's ``SimpleRateThrottle`` (the timestamps of the
window's requests, kept in the cache; a read-then-write, so concurrent requests
may overshoot a limit by a few: a rate limit, not a quota). What the throttle
decided is left on the request and ``RateLimitHeadersMiddleware`` writes it
into the response:

* ``X-RateLimit-Limit``: requests allowed per window in this scope;
* ``X-RateLimit-Remaining``: requests left in the window after this one;
* ``X-RateLimit-Reset``: Unix time (epoch seconds) when the oldest request
  counted leaves the window, so ``Remaining`` grows again (with ``Remaining``
  0: when the next request is allowed).

A refused request is a 429 in the one error body (code ``throttled``,
``fields.retry_after_seconds``) with a ``Retry-After`` header in whole seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import SimpleRateThrottle

# The scopes a view may pick, and what they are for (the README and the schema show them).
SCOPES: dict[str, str] = {
    "user": "every other request of a signed-in user",
    "anon": "every other anonymous request",
    "login": "registration, login and token refresh, per client address",
    "trading": "placing and cancelling orders, closing positions, starting/pausing/resuming/stopping bots, "
    "resetting a paper account",
    "research": "submitting backtests, optimizations, Monte Carlo runs and bot replays",
    "signal": "signal-bot webhooks, per webhook token",
}
# Counted per client address even when the request carries a session or token.
ADDRESS_SCOPES = frozenset({"anon", "login"})
REQUEST_ATTRIBUTE = "rate_limit"


@dataclass(frozen=True)
class RateLimit:
    """What one throttle decided for one request (the headers' values)."""

    scope: str
    limit: int
    remaining: int
    reset: int  # epoch seconds

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


def scope_rate(scope: str) -> str | None:
    """The rate of ``scope`` now (``"60/minute"``), or None: not limited."""
    return getattr(settings, f"{scope.upper()}_THROTTLE_RATE", None) or None


class ApiRateThrottle(SimpleRateThrottle):
    """The one API throttle (see the module docstring); subclasses change ``identity``."""

    def __init__(self) -> None:
        # The scope (and so the rate) depends on the view and the action: resolved per request.
        self.scope: str | None = None
        self.rate: str | None = None

    def scope_for(self, request: Any, view: Any) -> str:
        scopes: dict[str, str] = getattr(view, "throttle_scopes", None) or {}
        scope = (
            scopes.get(getattr(view, "action", None) or "")
            or scopes.get(request.method.lower())
            or getattr(view, "throttle_scope", None)
        )
        if scope:
            return scope
        user = getattr(request, "user", None)
        return "user" if user is not None and user.is_authenticated else "anon"

    def identity(self, request: Any, view: Any) -> str:
        user = getattr(request, "user", None)
        if self.scope not in ADDRESS_SCOPES and user is not None and user.is_authenticated:
            return f"user{user.pk}"
        return self.get_ident(request)

    def get_rate(self) -> str | None:
        return scope_rate(self.scope or "")

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.identity(request, view)}

    def allow_request(self, request: Any, view: Any) -> bool:
        self.scope = self.scope_for(request, view)
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = None
        allowed = super().allow_request(request, view)
        if self.key is not None:
            self._record(request)
        return allowed

    def wait(self) -> float | None:
        # Whole seconds, rounded up: a client that waits exactly this long is let in.
        wait = super().wait()
        return None if wait is None else max(1, math.ceil(wait))

    def _record(self, request: Any) -> None:
        """Leave this decision on the Django request for the headers (the tightest, with several)."""
        oldest = self.history[-1] if self.history else self.now
        state = RateLimit(
            scope=self.scope or "",
            limit=self.num_requests,
            remaining=max(0, self.num_requests - len(self.history)),
            reset=math.ceil(oldest + self.duration),
        )
        django_request = getattr(request, "_request", request)
        previous = getattr(django_request, REQUEST_ATTRIBUTE, None)
        if previous is None or state.remaining < previous.remaining:
            setattr(django_request, REQUEST_ATTRIBUTE, state)


class RateLimitHeadersMiddleware:
    """Adds ``X-RateLimit-Limit/Remaining/Reset`` to every response a throttle counted."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        state: RateLimit | None = getattr(request, REQUEST_ATTRIBUTE, None)
        if state is not None:
            for name, value in state.headers().items():
                response.headers.setdefault(name, value)
        return response
