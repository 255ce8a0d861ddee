from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.risk.api.killswitch import (
    KillSwitchActivationViewSet,
    KillSwitchEngageView,
    KillSwitchReleaseView,
    KillSwitchView,
)
from apps.risk.api.notifications import NotificationChannelViewSet, NotificationDeliveryViewSet
from apps.risk.api.views import RiskProfileView

app_name = "risk-api"

router = SimpleRouter()
router.register("notification-channels", NotificationChannelViewSet, basename="notification-channel")
router.register("notification-deliveries", NotificationDeliveryViewSet, basename="notification-delivery")
router.register("kill-switch/activations", KillSwitchActivationViewSet, basename="kill-switch-activation")

urlpatterns = [
    path("profile/", RiskProfileView.as_view(), name="profile"),
    path("kill-switch/", KillSwitchView.as_view(), name="kill-switch"),
    path("kill-switch/engage/", KillSwitchEngageView.as_view(), name="kill-switch-engage"),
    path("kill-switch/release/", KillSwitchReleaseView.as_view(), name="kill-switch-release"),
    *router.urls,
]
