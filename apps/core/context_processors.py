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
    ("Jobs", "ops:my-jobs"),
    ("Settings", "accounts:settings"),
]

# Shown to staff only: the operations pages (apps/ops).
STAFF_NAVIGATION = [("Ops", "ops:jobs")]


def platform(request):
    return {
        "NAVIGATION": NAVIGATION,
        "STAFF_NAVIGATION": STAFF_NAVIGATION,
        "EMBEDDED_MODE": settings.EMBEDDED,
    }
