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

Each identity's requests are counted in fixed windows of the rate's period
(a minute for ``"60/minute"``), with one atomic cache increment per request
(Redis ``INCR`` with ``REDIS_URL``, shared by every web process): O(1) per
request whatever the rate, and exact under concurrency. The windows of
different identities are offset by a hash of the identity, so throttled
clients do not all come back in the same second. (DRF's own
``SimpleRateThrottle`` keeps every timestamp of a sliding window in one cache
value, read and rewritten whole by every request: at 300 requests a second
that value is 18,000 floats, and concurrent requests overshoot the limit.) The
price of a fixed window: a client may send up to twice the limit around a
window's end. What the throttle decided is left on the request and
``RateLimitHeadersMiddleware`` writes it into the response:

* ``X-RateLimit-Limit``: requests allowed per window in this scope;
* ``X-RateLimit-Remaining``: requests left in the window after this one;
* ``X-RateLimit-Reset``: Unix time (epoch seconds) when the window ends and
  ``Remaining`` is back to ``Limit``.

A refused request is a 429 in the one error body (code ``throttled``,
``fields.retry_after_seconds``) with a ``Retry-After`` header: the whole
seconds until the window ends. Refused requests count too, but never move the
window's end.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)

CACHE_DOWN = (RedisConnectionError, RedisTimeoutError)

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


def rate_window(scope: str, ident: str, duration: int, now: float) -> tuple[str, int]:
    """The cache key of the window ``now`` falls in for this scope and identity, and its end (epoch s).

    Windows are ``duration`` seconds long, offset per scope and identity by a hash of the two.
    """
    base = SimpleRateThrottle.cache_format % {"scope": scope, "ident": ident}
    offset = zlib.crc32(base.encode()) % duration
    number = int((now - offset) // duration)
    return f"{base}_{number}", offset + (number + 1) * duration


class ApiRateThrottle(SimpleRateThrottle):
    """The one API throttle (see the module docstring); subclasses change ``scope_for`` and ``identity``."""

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

    def allow_request(self, request: Any, view: Any) -> bool:
        self.scope = self.scope_for(request, view)
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.now = self.timer()
        key, self.reset_at = rate_window(self.scope, self.identity(request, view), self.duration, self.now)
        # The key names its window, so it may outlive it: a whole period from now, whatever the clock.
        try:
            count = self._count(key, timeout=self.duration + 1)
        except CACHE_DOWN as exc:
            # The cache (Redis) is down: let the request through uncounted rather than refuse
            # reads that need only the database (docs/faults.md); no rate-limit headers then.
            logger.warning("rate limit not counted, the cache is unavailable: %r", exc)
            return True
        self._record(request, count)
        return count <= self.num_requests

    def _count(self, key: str, *, timeout: int) -> int:
        """This request's number in its window: one atomic increment (two requests never share one)."""
        try:
            return self.cache.incr(key)
        except ValueError:  # the window's first request (or the key expired a moment ago)
            if self.cache.add(key, 1, timeout):
                return 1
            return self.cache.incr(key)  # another process's first request won the add

    def wait(self) -> float:
        # Whole seconds, rounded up: a client that waits exactly this long is in the next window.
        return max(1, math.ceil(self.reset_at - self.now))

    def _record(self, request: Any, count: int) -> None:
        """Leave this decision on the Django request for the headers (the tightest, with several)."""
        state = RateLimit(
            scope=self.scope or "",
            limit=self.num_requests,
            remaining=max(0, self.num_requests - count),
            reset=self.reset_at,
        )
        django_request = getattr(request, "_request", request)
        previous = getattr(django_request, REQUEST_ATTRIBUTE, None)
        if previous is None or state.remaining < previous.remaining:
            setattr(django_request, REQUEST_ATTRIBUTE, state)


def throttle_reset(*, scope: str, ident: str) -> None:
    """Forget the requests ``ident`` made in ``scope``'s current window (tests start from a clean slate)."""
    rate = scope_rate(scope)
    if rate is not None:
        duration = ApiRateThrottle().parse_rate(rate)[1]
        cache.delete(rate_window(scope, ident, duration, ApiRateThrottle.timer())[0])


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
