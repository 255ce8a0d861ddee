from __future__ import annotations

from rest_framework.routers import SimpleRouter

from apps.orders.api.views import OrderViewSet, PositionViewSet, TradeViewSet

app_name = "orders-api"

router = SimpleRouter()
# Before the orders at the root: "positions/" would otherwise read as an order id.
router.register("positions", PositionViewSet, basename="position")
router.register("trades", TradeViewSet, basename="trade")
router.register("", OrderViewSet, basename="order")

urlpatterns = router.urls
