from __future__ import annotations

from django.urls import path

from apps.exchanges import views

app_name = "exchanges"

urlpatterns = [
    path("", views.index, name="index"),
]
