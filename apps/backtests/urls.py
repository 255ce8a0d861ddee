from __future__ import annotations

from django.urls import path

from apps.backtests import views

app_name = "backtests"

urlpatterns = [
    path("", views.index, name="index"),
]
