"""Empty the Django cache between tests without touching the broker or the channel layer.

With Redis, the cache shares its database with Celery's queues and bindings and with the
Channels layer, so ``clear_cache()`` (a FLUSHDB) would also drop a task a test worker has not
picked up yet. This deletes only the keys under the cache's own prefix.
"""

from __future__ import annotations

from django.core.cache import cache

from apps.core import cache as debounce_memory
from apps.ops import cachekeys


def clear_cache() -> None:
    debounce_memory.forget()  # the windows this process knows of go with the keys
    if not cachekeys.cache_is_redis():
        cache.clear()
        return
    client = cachekeys.redis_client()
    try:
        pattern = cachekeys.glob_escape(cachekeys.cache_key_prefix()) + "*"
        keys = list(client.scan_iter(match=pattern, count=1_000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()
