"""An in-memory channel layer that Celery's embedded worker threads can use.

Channels' ``InMemoryChannelLayer`` keeps asyncio queues owned by the server's
event loop. A task running in a worker thread publishes through
``async_to_sync``, i.e. on *another* loop, and waking the server's waiters from
there is not thread-safe. This layer hands such sends over to the server loop.
Only used by the embedded default (no Redis); with Redis, channels-redis.
"""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    _server_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel):
        type(self)._server_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def _on_server_loop(self, coroutine_function, *args):
        loop = type(self)._server_loop
        if loop is None or loop.is_closed() or loop is asyncio.get_running_loop():
            return await coroutine_function(*args)
        future = asyncio.run_coroutine_threadsafe(coroutine_function(*args), loop)
        return await asyncio.wrap_future(future)

    async def send(self, channel, message):
        return await self._on_server_loop(super().send, channel, message)

    async def group_send(self, group, message):
        return await self._on_server_loop(super().group_send, group, message)

    async def group_add(self, group, channel):
        return await self._on_server_loop(super().group_add, group, channel)

    async def group_discard(self, group, channel):
        return await self._on_server_loop(super().group_discard, group, channel)
