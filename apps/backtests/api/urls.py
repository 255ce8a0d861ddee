from __future__ import annotations

from rest_framework.routers import SimpleRouter

app_name = "backtests-api"

router = SimpleRouter()

urlpatterns = router.urls
