from __future__ import annotations

from django.urls import path

from apps.risk import views, views_safety

app_name = "risk"

urlpatterns = [
    path("", views.index, name="index"),
    path("kill-switch/", views_safety.kill_switch, name="kill-switch"),
    path("notifications/", views_safety.channel_create, name="notification-channel-create"),
    path("notifications/<int:pk>/delete/", views_safety.channel_delete, name="notification-channel-delete"),
    path("notifications/<int:pk>/test/", views_safety.channel_test, name="notification-channel-test"),
    path("limits/", views.limit_create, name="limit-create"),
    path("limits/<int:pk>/delete/", views.limit_delete, name="limit-delete"),
    path("alerts/<int:pk>/acknowledge/", views.alert_acknowledge, name="alert-acknowledge"),
]
