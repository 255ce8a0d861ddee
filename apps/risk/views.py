from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from apps.risk import selectors
from apps.risk.forms import RiskProfileForm


@login_required
def index(request):
    profile = selectors.risk_profile_get(user=request.user)
    form = RiskProfileForm.for_profile(profile, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid() and form.save(user=request.user) is not None:
        messages.success(request, "Risk limits saved.")
        return redirect("risk:index")
    return render(request, "risk/index.html", {"section": "Risk", "profile": profile, "form": form})
