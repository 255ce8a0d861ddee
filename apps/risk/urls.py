from __future__ import annotations

from django.urls import path

from apps.risk import views

app_name = "risk"

urlpatterns = [
    path("", views.index, name="index"),
    path("kill-switch/", views.kill_switch, name="kill-switch"),
    path("limits/", views.limit_create, name="limit-create"),
    path("limits/<int:pk>/delete/", views.limit_delete, name="limit-delete"),
    path("alerts/<int:pk>/acknowledge/", views.alert_acknowledge, name="alert-acknowledge"),
]
