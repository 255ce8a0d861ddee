from __future__ import annotations

from django.urls import path

from apps.backtests import views

app_name = "backtests"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.backtest_new, name="new"),
    path("<int:pk>/", views.backtest_detail, name="detail"),
    path("compare/", views.compare, name="compare"),
    path("strategies/", views.strategy_list, name="strategies"),
    path("strategies/new/", views.strategy_new, name="strategy_new"),
    path("strategies/<int:pk>/", views.strategy_edit, name="strategy_edit"),
    path("optimizations/", views.optimization_list, name="optimizations"),
    path("optimizations/new/", views.optimization_new, name="optimization_new"),
    path("optimizations/<int:pk>/", views.optimization_detail, name="optimization"),
]
