from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core.api.exceptions import not_found_json
from apps.core.api.views import api_root

api_v1 = [
    path("", api_root, name="api-root"),
    path("auth/", include("apps.accounts.api.urls")),
    path("exchanges/", include("apps.exchanges.api.urls")),
    path("market-data/", include("apps.marketdata.api.urls")),
    path("bots/", include("apps.bots.api.urls")),
    path("signals/", include("apps.bots.api.signal_urls")),
    path("orders/", include("apps.orders.api.urls")),
    path("risk/", include("apps.risk.api.urls")),
    path("backtests/", include("apps.backtests.api.urls")),
    path("portfolio/", include("apps.portfolio.api.urls")),
    path("jobs/", include("apps.ops.api.job_urls")),
    path("ops/", include("apps.ops.api.urls")),
]

urlpatterns = [
    path("", include("apps.home.urls")),
    path("", include("apps.core.urls")),
    path("accounts/", include("apps.accounts.urls")),
    path("exchanges/", include("apps.exchanges.urls")),
    path("markets/", include("apps.marketdata.urls")),
    path("bots/", include("apps.bots.urls")),
    path("orders/", include("apps.orders.urls")),
    path("risk/", include("apps.risk.urls")),
    path("backtests/", include("apps.backtests.urls")),
    path("portfolio/", include("apps.portfolio.urls")),
    path("", include("apps.ops.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its init script as a file: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: any other /api/.../ path is the JSON error body, with DEBUG on too (handler404
    # only applies with DEBUG off). Slash-terminated, so APPEND_SLASH still redirects first.
    re_path(r"^api/(?:.*/)?$", not_found_json),
]

handler400 = "apps.core.views_errors.bad_request"
handler404 = "apps.core.views_errors.not_found"
handler500 = "apps.core.views_errors.server_error"
