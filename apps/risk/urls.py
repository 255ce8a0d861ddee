from __future__ import annotations

from django.urls import path

from apps.risk import views

app_name = "risk"

urlpatterns = [
    path("", views.index, name="index"),
    path("kill-switch/", views.kill_switch, name="kill-switch"),
]
