from __future__ import annotations

from rest_framework.routers import SimpleRouter

from apps.bots.api.views import BotViewSet

app_name = "bots-api"

router = SimpleRouter()
router.register("", BotViewSet, basename="bot")

urlpatterns = router.urls
