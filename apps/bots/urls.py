from __future__ import annotations

from django.urls import path

from apps.bots import views

app_name = "bots"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.new, name="new"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/replay/", views.replay, name="replay"),
    path("<int:pk>/webhook/rotate/", views.webhook_rotate, name="webhook-rotate"),
    path("<int:pk>/<str:name>/", views.action, name="action"),
]
