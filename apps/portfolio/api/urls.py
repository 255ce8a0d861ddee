from __future__ import annotations

from rest_framework.routers import SimpleRouter

from apps.portfolio.api.views import EquitySnapshotViewSet

app_name = "portfolio-api"

router = SimpleRouter()
router.register("equity", EquitySnapshotViewSet, basename="equity")

urlpatterns = router.urls
