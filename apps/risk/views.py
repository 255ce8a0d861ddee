from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.risk import selectors


@login_required
def index(request):
    profile = selectors.risk_profile_get(user=request.user)
    return render(request, "risk/index.html", {"section": "Risk", "profile": profile})
