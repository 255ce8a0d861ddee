"""The Django cache on Redis, with one connection pool per process (``CACHES`` in config/settings.py).

Django's ``RedisCache`` keeps its connection pool on the cache object, and the cache object
lives in ``django.core.cache.caches``, an asgiref ``Local``: under ASGI (and a2wsgi) every
request runs in a fresh context, so every request built a new pool and opened a new TCP
connection to Redis (a connect, a health check and a client object of ~170 response
callbacks: the biggest cost of the API's rate-limit check, benchmarks/load.py). Here the pool
and the client are shared by the whole process, keyed by server URL and options; redis-py's
pool is thread-safe and resets itself in a forked child (Celery's prefork, uvicorn's workers).

``incr`` is also one round trip (a script) instead of Django's ``EXISTS`` then ``INCRBY``;
its contract is Django's: ``ValueError`` when the key does not exist.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient

# KEYS[1] the key, ARGV[1] the delta; nil when the key does not exist (Django's incr raises then).
_INCR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""


class SharedPoolRedisCacheClient(DjangoRedisCacheClient):
    _shared: ClassVar[dict[tuple[str, str], Any]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        shared_key = (self._servers[index], repr(sorted(self._pool_options.items())))
        client = self._shared.get(shared_key)
        if client is None:
            with self._lock:
                client = self._shared.get(shared_key)
                if client is None:
                    pool = self._pool_class.from_url(self._servers[index], **self._pool_options)
                    client = self._client(connection_pool=pool)
                    client.incr_if_exists = client.register_script(_INCR_IF_EXISTS)
                    self._shared[shared_key] = client
        return client

    def incr(self, key: Any, delta: int) -> int:
        client = self.get_client(key, write=True)
        value = client.incr_if_exists(keys=[key], args=[delta])
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient


# ------------------------------------------------------------------------------ debouncing
_held: dict[str, float] = {}
_held_lock = threading.Lock()


def first_in_window(key: str, seconds: int) -> bool:
    """Whether this call opens ``key``'s window of ``seconds`` (the first of a burst, across processes).

    The window is the cache's (``cache.add``: atomic, one winner). A window this process opened is
    known to last until it ends, so calls inside it answer without a round trip (a fill debounce
    is asked for every fill); a window another process opened costs one. Nothing deletes such a
    key early: that is what makes the memory exact (``forget`` empties it, for the tests).
    """
    from django.core.cache import cache

    now = time.monotonic()
    if _held.get(key, 0.0) > now:
        return False
    if not cache.add(key, 1, timeout=seconds):
        return False
    with _held_lock:
        if len(_held) > 10_000:  # (the expired ones go)
            for stale in [k for k, until in _held.items() if until <= now]:
                del _held[stale]
        _held[key] = now + seconds - 0.05  # within the cache's own expiry, set just now
    return True


def forget() -> None:
    """Drop what ``first_in_window`` knows (a test that empties the cache empties this too)."""
    with _held_lock:
        _held.clear()
