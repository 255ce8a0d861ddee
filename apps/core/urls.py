from __future__ import annotations

from django.urls import path

from apps.core import views
from apps.core.observability.views import metrics

app_name = "core"

urlpatterns = [
    path("health/", views.health, name="health"),
    path("health/ready/", views.health_ready, name="health-ready"),
    path("metrics", metrics, name="metrics"),
]
