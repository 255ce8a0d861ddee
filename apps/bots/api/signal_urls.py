"""``/api/v1/signals/``: the webhook of signal bots (the token in the path authenticates)."""

from __future__ import annotations

from django.urls import path

from apps.bots.api.signals import SignalWebhookView

app_name = "signals-api"

urlpatterns = [
    path("<str:token>/", SignalWebhookView.as_view(), name="receive"),
]
