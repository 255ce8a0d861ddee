"""The Redis cache's key families, and how to reach the Redis behind Django's cache.

The Django cache shares its Redis database with Celery's broker (kombu queues and
bindings, ``celery-task-meta-*``) and the Channels layer (``<CHANNELS_PREFIX>:group:*``,
``<CHANNELS_PREFIX>specific.*``): only keys under the cache's own prefix
(``cache.make_key("")``, e.g. ``trading:1:``) are ever listed as cache keys or cleared, and
``is_protected`` refuses the broker's and the layer's keys a second time.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

# How many keys one SCAN pass looks at, at most: a page load must stay cheap on a big cache.
SCAN_CAP = 20_000
SCAN_COUNT = 1_000


@dataclass(frozen=True)
class CacheGroup:
    key: str
    prefix: str  # of the cache key as the apps write it (before Django's KEY_PREFIX:version:)
    description: str
    clearable: bool


# The apps' cache key families (grep ``cache.`` in apps/). Clearable ones are pure caches the
# apps rebuild on the next read; counters (lock-outs, rate limits) and debounces are not cleared.
CACHE_GROUPS: tuple[CacheGroup, ...] = (
    CacheGroup(
        "marketdata", "marketdata:", "Market data: prices, order books, trades, replay-feed positions", True
    ),
    CacheGroup("prices", "marketdata:ticker:", "Live prices (tickers)", True),
    CacheGroup("orderbooks", "marketdata:book:", "Order books", True),
    CacheGroup("paper", "paper:", "Paper exchange: candle lookups", True),
    CacheGroup("portfolio", "portfolio:", "Portfolio: trade ledgers, snapshot debounces", True),
    CacheGroup("risk", "risk:", "Risk: limits and notification channels per user, monitor debounces", True),
    CacheGroup("api", "api:", "API: polled reads kept per user, and the table versions that drop them", True),
    CacheGroup("login", "login-failures:", "Failed-login counters (lock-outs)", False),
    CacheGroup("throttle", "throttle_", "API rate-limit counters", False),
    CacheGroup("ops", "ops:", "Last outcome of each periodic job; the workers' heartbeats", False),
)
GROUPS_BY_KEY = {group.key: group for group in CACHE_GROUPS}
CLEARABLE_GROUPS = tuple(group.key for group in CACHE_GROUPS if group.clearable)


def cache_is_redis() -> bool:
    return "redis" in settings.CACHES["default"]["BACKEND"].lower()


def cache_key_prefix() -> str:
    """What Django puts before every key the apps write (``KEY_PREFIX:version:``)."""
    return cache.make_key("")


def redis_client():
    """A client of the Redis database behind the Django cache (short timeouts: a page asks)."""
    import redis

    location = settings.CACHES["default"]["LOCATION"]
    if isinstance(location, (list, tuple)):
        location = location[0]
    url = str(location).split(",")[0]
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def protected_prefixes() -> tuple[str, ...]:
    """Key beginnings that belong to Celery/kombu or Channels, never to the cache."""
    channels = settings.CHANNEL_LAYERS.get("default", {}).get("CONFIG", {}).get("prefix", "asgi")
    queues = tuple(settings.CELERY_WORKER_QUEUES)
    return (
        "_kombu",
        "celery-task-meta-",
        "celery-taskset-meta-",
        "celery-",
        "unacked",
        "asgi:",
        f"{channels}:group:",
        f"{channels}specific.",
        *queues,
    )


def is_protected(key: str) -> bool:
    """A key of the broker or the channel layer (or anything outside the cache's own prefix)."""
    return not key.startswith(cache_key_prefix()) or key.startswith(protected_prefixes())


def glob_escape(text: str) -> str:
    """``text`` literally in a SCAN MATCH pattern (glob syntax)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
