from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.marketdata.api import views

app_name = "marketdata-api"

router = SimpleRouter()
router.register("markets", views.MarketViewSet, basename="market")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")
router.register("jobs", views.ImportJobViewSet, basename="job")

urlpatterns = [
    path("candles/", views.CandlesView.as_view(), name="candles"),
    path("ohlc/", views.OhlcView.as_view(), name="ohlc"),
    path("gaps/", views.GapsView.as_view(), name="gaps"),
    path("price/", views.PriceView.as_view(), name="price"),
    path("ticker/", views.TickerView.as_view(), name="ticker"),
    path("orderbook/", views.OrderBookView.as_view(), name="orderbook"),
    path("trades/", views.TradesView.as_view(), name="trades"),
    path("stats/", views.StatsView.as_view(), name="stats"),
    path("stats/watched/", views.WatchedStatsView.as_view(), name="stats-watched"),
    path("overview/", views.OverviewView.as_view(), name="overview"),
    *router.urls,
]
