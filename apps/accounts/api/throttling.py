from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class LoginRateThrottle(SimpleRateThrottle):
    """Requests per client address to the credential endpoints (login, register, refresh).

    The rate is read from settings at request time (``LOGIN_THROTTLE_RATE``),
    so deployments tune it by environment.
    """

    scope = "login"

    def get_rate(self):
        return settings.LOGIN_THROTTLE_RATE

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
