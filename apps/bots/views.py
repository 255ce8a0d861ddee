from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.bots import selectors


@login_required
def index(request):
    # A user runs a handful of bots, not thousands: one page, no pagination.
    return render(
        request, "bots/index.html", {"section": "Bots", "bots": selectors.bot_list(user=request.user)}
    )
