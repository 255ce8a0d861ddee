from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core import broadcast
from apps.core.event_stream import event_stream
from apps.core.events import BROADCAST_GROUP, envelope_text, user_group
from apps.core.observability.metrics import WEBSOCKETS

# WebSocket close code for "not authenticated" (4000-4999 are application codes).
CLOSE_UNAUTHENTICATED = 4401


def _after(value) -> int | None:
    """A client's last sequence number, or None when absent or not a non-negative integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/events/``: every live event for the signed-in user, in sequence order.

    Authenticated by the session cookie or ``?token=<JWT access token>``. A client
    that was connected before passes the last sequence number it saw, ``?after=N``
    (or sends ``{"type": "resume", "after": N}`` first): it gets the events it
    missed, in order and once each, or one ``live.reset`` when they are no longer
    kept. Clients may send ``{"type": "ping"}`` and get ``pong`` back.
    The stream read is always the signed-in user's own: nothing a client sends
    names a user. docs/events.md has the protocol.
    """

    sequence = 0  # the newest sequence number sent on this socket

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept, then close with our code: a refused handshake would only
            # show the browser a generic failure, and live.js stops retrying on 4401.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user.pk
        self.groups_joined = [user_group(user.pk)]
        if broadcast.enabled():
            # Events for everybody come from this process's one subscription (apps/core/broadcast.py).
            self.hub = broadcast.hub()
            self.hub.add(self.broadcast_text)
            if not self.hub.subscribed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.hub.subscribed.wait(), 2)
        else:
            self.groups_joined.append(BROADCAST_GROUP)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        # Joined first, read second: an event numbered after this read arrives through the group.
        # Read before accepting: once the client sees the socket open, anything it causes is
        # numbered after this (read after the accept, such an event was dropped as already sent).
        self.sequence = await asyncio.to_thread(event_stream().current, self.user_id)
        await self.accept()
        WEBSOCKETS.inc()
        self.counted = True
        query = parse_qs(self.scope.get("query_string", b"").decode())
        after = _after((query.get("after") or [None])[0])
        await self.send(text_data=envelope_text("connected", {"user": user.pk, "sequence": self.sequence}))
        if after is not None:
            await self._resume(after)

    async def disconnect(self, code):
        if getattr(self, "counted", False):
            WEBSOCKETS.dec()
            self.counted = False
        if hasattr(self, "hub"):
            self.hub.discard(self.broadcast_text)
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            return
        if content.get("type") == "ping":
            await self.send(text_data=envelope_text("pong", {}))
        elif content.get("type") == "resume" and (after := _after(content.get("after"))) is not None:
            await self._resume(after)

    async def _resume(self, after: int) -> None:
        """Send what a client that saw up to ``after`` missed, up to what this socket has sent."""
        if after == self.sequence:
            return
        missed = await asyncio.to_thread(event_stream().since, self.user_id, after, self.sequence)
        if not missed.complete:
            await self._reset("gap" if after < self.sequence else "unknown")
            return
        for text in missed.events:
            await self.send(text_data=text)

    async def _reset(self, reason: str) -> None:
        await self.send(text_data=envelope_text("live.reset", {"reason": reason, "sequence": self.sequence}))

    async def broadcast_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def event_message(self, message):
        await self._deliver(message["text"], message.get("sequence"))

    async def event_messages(self, message):
        """Several of the user's events, numbered together (``events_batched``), in order."""
        for text, sequence in message["events"]:
            await self._deliver(text, sequence)

    async def _deliver(self, text: str, sequence: int | None) -> None:
        if sequence is None:  # prices, heartbeats, broadcasts: as they come
            await self.send(text_data=text)
            return
        if sequence <= self.sequence:  # already sent (caught up from the kept events)
            return
        if sequence > self.sequence + 1:
            # Publishers racing each other (or a send the layer dropped) left a hole: the kept
            # events fill it, so the client still sees every number once, in order.
            missed = await asyncio.to_thread(event_stream().since, self.user_id, self.sequence, sequence - 1)
            if missed.complete:
                for kept in missed.events:
                    await self.send(text_data=kept)
            else:
                self.sequence = sequence - 1  # the client takes the reset's number as seen
                await self._reset("gap")
        self.sequence = sequence
        await self.send(text_data=text)
