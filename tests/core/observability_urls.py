"""The project's URLs plus a view that fails with secrets in its locals and its exception
(tests/core/test_observability_logs.py)."""

from __future__ import annotations

from django.urls import path

from config.urls import urlpatterns as project_urlpatterns

BOOM_SECRET = "boom-api-secret-QX7mZr2Lk9"
BOOM_KEY = "boom-api-key-Vn3pW8sTt1"


def boom(request):
    api_key = BOOM_KEY
    api_secret = BOOM_SECRET
    payload = {"api_key": api_key, "api_secret": api_secret, "symbol": "BTC/USDT"}
    # An exchange client that puts its request into its error, as some do.
    raise RuntimeError(f"exchange refused the request {payload}")


urlpatterns = [path("test-boom/", boom, name="test-boom"), *project_urlpatterns]
handler404 = "apps.core.views_errors.not_found"
handler500 = "apps.core.views_errors.server_error"
