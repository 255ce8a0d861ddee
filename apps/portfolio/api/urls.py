from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.portfolio.api import views

app_name = "portfolio-api"

router = SimpleRouter()
router.register("equity", views.EquitySnapshotViewSet, basename="equity")

urlpatterns = [
    path("summary/", views.SummaryView.as_view(), name="summary"),
    path("accounts/", views.AccountsView.as_view(), name="accounts"),
    path("balances/", views.BalancesView.as_view(), name="balances"),
    path("exposure/", views.ExposureView.as_view(), name="exposure"),
    path("positions/", views.PositionsView.as_view(), name="positions"),
    path("equity-curve/", views.EquityCurveView.as_view(), name="equity-curve"),
    path("drawdown/", views.DrawdownView.as_view(), name="drawdown"),
    path("daily-pnl/", views.DailyPnlView.as_view(), name="daily-pnl"),
    path("daily-pnl.csv", views.DailyPnlExportView.as_view(), name="daily-pnl-csv"),
    path("monthly-pnl/", views.MonthlyPnlView.as_view(), name="monthly-pnl"),
    path("performance/", views.PerformanceView.as_view(), name="performance"),
    path("trading-metrics/", views.TradingMetricsView.as_view(), name="trading-metrics"),
    path("trade-distribution/", views.TradeDistributionView.as_view(), name="trade-distribution"),
    path("comparison/", views.ComparisonView.as_view(), name="comparison"),
    path("monthly-strategy/", views.MonthlyStrategyView.as_view(), name="monthly-strategy"),
    path("cash-flows/", views.CashFlowListView.as_view(), name="cash-flows"),
    path("trades.csv", views.TradesExportView.as_view(), name="trades-csv"),
    *router.urls,
]
