from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.risk.api.views import (
    RiskAlertViewSet,
    RiskExposureView,
    RiskLimitViewSet,
    RiskOverviewView,
    RiskProfileView,
)

app_name = "risk-api"

router = SimpleRouter()
router.register("limits", RiskLimitViewSet, basename="limit")
router.register("alerts", RiskAlertViewSet, basename="alert")

urlpatterns = [
    path("profile/", RiskProfileView.as_view(), name="profile"),
    path("overview/", RiskOverviewView.as_view(), name="overview"),
    path("exposure/", RiskExposureView.as_view(), name="exposure"),
    *router.urls,
]
