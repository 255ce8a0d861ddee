from __future__ import annotations

from django.urls import path

from apps.core import views

app_name = "core"

urlpatterns = [
    path("health/", views.health, name="health"),
    path("health/ready/", views.health_ready, name="health-ready"),
]
