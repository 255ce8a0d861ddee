"""The Redis cache backend (apps.core.cache): one pool per process, Django's cache contract kept."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache, caches

from tests.support import aio

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs REDIS_URL (a real Redis); .ci/run sets it"
)


def key() -> str:
    return f"test-cache-{uuid.uuid4().hex}"


def test_incr_keeps_djangos_contract():
    name = key()
    with pytest.raises(ValueError):
        cache.incr(name)
    assert cache.get(name) is None  # a failed incr creates nothing
    cache.set(name, 5, 30)
    assert cache.incr(name) == 6
    assert cache.incr(name, 10) == 16
    assert cache.decr(name, 6) == 10
    assert cache.get(name) == 10
    cache.delete(name)


def test_incr_is_atomic_under_threads():
    name = key()
    cache.set(name, 0, 30)
    barrier = threading.Barrier(8)

    def hit() -> None:
        barrier.wait()
        for _ in range(50):
            cache.incr(name)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert cache.get(name) == 400
    cache.delete(name)


def _connections_made() -> int:
    client = caches["default"]._cache.get_client(write=True)
    return client.connection_pool._created_connections


def test_requests_in_fresh_contexts_share_one_pool_and_its_connections():
    """Under ASGI each request is a new context, so ``caches`` hands out a new cache object:
    with Django's backend each one opened its own pool and a new connection to Redis."""
    cache.get(key())
    before = _connections_made()

    async def request() -> None:
        await sync_to_async(lambda: caches["default"].get(key()), thread_sensitive=False)()

    async def many() -> None:
        for _ in range(20):
            await asyncio.create_task(request())  # each task: a fresh context, as ASGI requests

    aio.run(many())
    clients = set()

    def client_in_a_new_thread() -> None:
        clients.add(id(caches["default"]._cache.get_client(write=True)))

    threads = [threading.Thread(target=client_in_a_new_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
        thread.join()
    assert len(clients) == 1
    assert _connections_made() - before <= 1
