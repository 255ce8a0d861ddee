from __future__ import annotations

from django.urls import path

from apps.bots import views

app_name = "bots"

urlpatterns = [
    path("", views.index, name="index"),
]
