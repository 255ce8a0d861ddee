from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.home.selectors import home_page


@login_required
def index(request):
    """The page a trader opens every morning: equity, P&L, positions, orders, bots, alerts, prices."""
    return render(request, "home/index.html", {"section": "Dashboard", **home_page(user=request.user)})
