from __future__ import annotations

from django.urls import path

from apps.risk.api.views import RiskProfileView

app_name = "risk-api"

urlpatterns = [
    path("profile/", RiskProfileView.as_view(), name="profile"),
]
