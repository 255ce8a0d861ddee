"""Events for everybody connected (prices, heartbeats), fanned out once per ASGI process.

With channels-redis a ``group_send`` to a group of N sockets writes N messages into
Redis, and the server reads them back one round trip at a time: one price to 1,000
sockets took seconds, and past the layer's capacity some were dropped
(benchmarks/realtime.py). Here an event for everybody is one Redis ``PUBLISH``; each
server process holds one subscription and hands the text to its own sockets.

The embedded default (no Redis) keeps the in-memory channel layer's group, which is
in-process already. Events for everybody are unsequenced and never replayed
(docs/events.md), so a process that is (re)subscribing misses nothing a page needs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from django.conf import settings

logger = logging.getLogger(__name__)

Receiver = Callable[[str], Awaitable[None]]


def channel_name() -> str:
    return f"{settings.CHANNEL_LAYERS['default'].get('CONFIG', {}).get('prefix', 'asgi')}:broadcast"


def enabled() -> bool:
    """Whether events for everybody go through the Redis broadcast (else the channel layer's group)."""
    return bool(settings.REDIS_URL)


def publish(text: str) -> None:
    """Send one event's JSON text to every socket of every server process (sync; from anywhere)."""
    from apps.core.event_stream import event_stream

    event_stream().client.publish(channel_name(), text)


class Hub:
    """This process's sockets that want events for everybody, and the one subscription feeding them."""

    def __init__(self) -> None:
        self.receivers: set[Receiver] = set()
        self._task: asyncio.Task | None = None
        self.subscribed = asyncio.Event()

    def add(self, receiver: Receiver) -> None:
        self.receivers.add(receiver)
        if self._task is None or self._task.done():
            self.subscribed.clear()
            self._task = asyncio.get_running_loop().create_task(self._listen())

    def discard(self, receiver: Receiver) -> None:
        self.receivers.discard(receiver)

    async def _listen(self) -> None:
        import redis.asyncio as redis

        delay = 0.5
        while self.receivers:
            client = redis.Redis.from_url(settings.REDIS_URL)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(channel_name())
                    self.subscribed.set()
                    delay = 0.5
                    while self.receivers:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                        if message is not None:
                            await self._deliver(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis restarting: keep trying while anyone listens
                logger.warning("broadcast subscription lost; retrying in %.1f s", delay, exc_info=True)
                self.subscribed.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                await client.aclose()

    async def _deliver(self, text: str) -> None:
        for receiver in list(self.receivers):
            try:
                await receiver(text)
            except Exception:  # one closing socket must not starve the others
                logger.debug("broadcast to a closing socket failed", exc_info=True)


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """The hub of the running event loop (one per server process in practice)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        for closed in [other for other in _hubs if other.is_closed()]:
            del _hubs[closed]
        found = _hubs[loop] = Hub()
    return found
