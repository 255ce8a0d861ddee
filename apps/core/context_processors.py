from __future__ import annotations

from django.conf import settings

NAVIGATION = [
    ("Dashboard", "home:index"),
    ("Markets", "marketdata:index"),
    ("Backtests", "backtests:index"),
    ("Bots", "bots:index"),
    ("Orders", "orders:index"),
    ("Portfolio", "portfolio:index"),
    ("Risk", "risk:index"),
    ("Exchanges", "exchanges:index"),
    ("Settings", "accounts:settings"),
]


def platform(request):
    return {"NAVIGATION": NAVIGATION, "EMBEDDED_MODE": settings.EMBEDDED}
