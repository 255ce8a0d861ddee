from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.portfolio import selectors

RECENT = 20


@login_required
def index(request):
    return render(
        request,
        "portfolio/index.html",
        {
            "section": "Portfolio",
            "latest": selectors.equity_latest(user=request.user),
            "recent": selectors.equity_snapshot_list(user=request.user)[:RECENT],
        },
    )
