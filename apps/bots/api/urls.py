from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.bots.api.signals import BotSignalListView, BotWebhookRotateView
from apps.bots.api.views import BotViewSet

app_name = "bots-api"

router = SimpleRouter()
router.register("", BotViewSet, basename="bot")

urlpatterns = [
    *router.urls,
    path("<int:pk>/signals/", BotSignalListView.as_view(), name="bot-signals"),
    path("<int:pk>/webhook/rotate/", BotWebhookRotateView.as_view(), name="bot-webhook-rotate"),
]
