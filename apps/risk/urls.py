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
]
