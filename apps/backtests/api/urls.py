from __future__ import annotations

from django.urls import path

from apps.backtests.api import views

app_name = "backtests-api"

urlpatterns = [
    path("", views.RunListView.as_view(), name="run-list"),
    path("compare/", views.RunCompareView.as_view(), name="run-compare"),
    path("<int:pk>/", views.RunDetailView.as_view(), name="run-detail"),
    path("<int:pk>/status/", views.RunStatusView.as_view(), name="run-status"),
    path("<int:pk>/cancel/", views.RunCancelView.as_view(), name="run-cancel"),
    path("<int:pk>/results/", views.RunResultsView.as_view(), name="run-results"),
    path("<int:pk>/trades/", views.RunTradesView.as_view(), name="run-trades"),
    path("<int:pk>/trades/export/", views.RunTradesExportView.as_view(), name="run-export"),
    path("<int:pk>/equity/", views.RunEquityView.as_view(), name="run-equity"),
    path("<int:pk>/positions/", views.RunPositionsView.as_view(), name="run-positions"),
    path("<int:pk>/candles/", views.RunCandlesView.as_view(), name="run-candles"),
    path("<int:pk>/monte-carlo/", views.RunMonteCarloView.as_view(), name="run-monte-carlo"),
    path("strategies/", views.StrategyListView.as_view(), name="strategy-list"),
    path("strategies/builtin/", views.BuiltinStrategyListView.as_view(), name="strategy-builtin"),
    path("strategies/validate/", views.StrategyValidateView.as_view(), name="strategy-validate"),
    path("strategies/performance/", views.StrategyPerformanceView.as_view(), name="strategy-performance"),
    path("strategies/<int:pk>/", views.StrategyDetailView.as_view(), name="strategy-detail"),
    path("strategies/<int:pk>/versions/", views.StrategyVersionListView.as_view(), name="strategy-versions"),
    path(
        "strategies/<int:pk>/versions/<int:version>/",
        views.StrategyVersionDetailView.as_view(),
        name="strategy-version-detail",
    ),
    path("optimizations/", views.OptimizationListView.as_view(), name="optimization-list"),
    path("optimizations/<int:pk>/", views.OptimizationDetailView.as_view(), name="optimization-detail"),
    path(
        "optimizations/<int:pk>/cancel/", views.OptimizationCancelView.as_view(), name="optimization-cancel"
    ),
    path(
        "optimizations/<int:pk>/results/",
        views.OptimizationResultsView.as_view(),
        name="optimization-results",
    ),
    path(
        "optimizations/<int:pk>/heatmap/",
        views.OptimizationHeatmapView.as_view(),
        name="optimization-heatmap",
    ),
]
