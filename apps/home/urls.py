from __future__ import annotations

from django.urls import path

from apps.home import views

app_name = "home"

urlpatterns = [
    path("", views.index, name="index"),
]
