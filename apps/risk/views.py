from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.errors import NotFound
from apps.risk import alerts, monitoring, selectors, services
from apps.risk.forms import RiskLimitForm, RiskProfileForm


@login_required
def index(request):
    profile = selectors.risk_profile_get(user=request.user)
    form = RiskProfileForm.for_profile(profile, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid() and form.save(user=request.user) is not None:
        messages.success(request, "Risk limits saved.")
        return redirect("risk:index")
    return render(request, "risk/index.html", _context(request, profile=profile, form=form))


def _context(request, **extra) -> dict:
    user = request.user
    return {
        "section": "Risk",
        "overview": monitoring.risk_overview(user=user),
        "exposure": monitoring.risk_exposure_breakdown(user=user),
        "limits": list(selectors.risk_limit_list(user=user).select_related("bot")),
        "alerts": list(selectors.risk_alert_list(user=user)[:30]),
        "limit_form": extra.pop("limit_form", None) or RiskLimitForm(),
        **extra,
    }


@login_required
@require_POST
def limit_create(request):
    form = RiskLimitForm(request.POST)
    if form.is_valid() and form.save(user=request.user) is not None:
        messages.success(request, "Limit added.")
        return redirect("risk:index")
    profile = selectors.risk_profile_get(user=request.user)
    context = _context(request, profile=profile, form=RiskProfileForm.for_profile(profile), limit_form=form)
    return render(request, "risk/index.html", context, status=400)


@login_required
@require_POST
def limit_delete(request, pk: int):
    try:
        limit = selectors.risk_limit_get(user=request.user, pk=pk)
    except NotFound:
        raise Http404("Limit not found.") from None
    services.risk_limit_delete(limit=limit)
    messages.success(request, "Limit removed.")
    return redirect("risk:index")


@login_required
@require_POST
def alert_acknowledge(request, pk: int):
    try:
        alert = selectors.risk_alert_get(user=request.user, pk=pk)
    except NotFound:
        raise Http404("Alert not found.") from None
    alerts.alert_acknowledge(alert=alert)
    return redirect("risk:index")
