from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.exchanges.api import views

app_name = "exchanges-api"

router = SimpleRouter()
router.register("connections", views.ConnectionViewSet, basename="connection")

urlpatterns = [
    path("supported/", views.SupportedExchangesView.as_view(), name="supported"),
    path("paper/", views.PaperAccountView.as_view(), name="paper"),
    path("paper/reset/", views.PaperResetView.as_view(), name="paper-reset"),
    *router.urls,
]
