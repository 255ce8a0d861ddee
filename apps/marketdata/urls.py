from __future__ import annotations

from django.urls import path

from apps.marketdata import views

app_name = "marketdata"

urlpatterns = [
    path("", views.index, name="index"),
    path("chart/", views.chart, name="chart"),
]
