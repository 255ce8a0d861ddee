from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core.events import BROADCAST_GROUP, user_group
from apps.core.observability.metrics import WEBSOCKETS

# WebSocket close code for "not authenticated" (4000-4999 are application codes).
CLOSE_UNAUTHENTICATED = 4401


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/events/``: every live event for the signed-in user.

    Authenticated by the session cookie or ``?token=<JWT access token>``.
    Clients may send ``{"type": "ping"}`` and get ``{"type": "pong"}`` back.
    """

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept, then close with our code: a refused handshake would only
            # show the browser a generic failure, and live.js stops retrying on 4401.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.groups_joined = [user_group(user.pk), BROADCAST_GROUP]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        WEBSOCKETS.inc()
        self.counted = True
        await self.send_json({"type": "connected", "data": {"user": user.pk}})

    async def disconnect(self, code):
        if getattr(self, "counted", False):
            WEBSOCKETS.dec()
            self.counted = False
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def event_message(self, message):
        await self.send_json(message["event"])
