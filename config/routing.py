"""WebSocket routes. Apps that own a live stream add theirs here."""

from __future__ import annotations

from django.urls import path

from apps.core.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi()),
]
