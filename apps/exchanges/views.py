"""Exchanges dashboard: connections with status, the add form, live test, the paper account."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError, NotFound
from apps.exchanges import selectors, services
from apps.exchanges.catalog import SUPPORTED_EXCHANGES
from apps.exchanges.forms import ConnectionForm, PaperBalancesForm


def _render(
    request, *, form: ConnectionForm | None = None, paper_form: PaperBalancesForm | None = None, status=200
):
    account = services.paper_account_get_or_create(user=request.user)
    initial = ", ".join(f"{asset}={amount}" for asset, amount in sorted(account.initial_balances.items()))
    context = {
        "section": "Exchanges",
        "connections": selectors.connection_list(user=request.user),
        "form": form or ConnectionForm(),
        "paper_form": paper_form or PaperBalancesForm(initial={"balances": initial}),
        "paper": account,
        "paper_balances": account.balances.order_by("asset"),
        "supported": {key: info.to_dict() for key, info in SUPPORTED_EXCHANGES.items()},
    }
    return render(request, "exchanges/index.html", context, status=status)


@login_required
def index(request):
    return _render(request)


@sensitive_post_parameters("api_key", "api_secret", "passphrase")  # kept out of error reports
@login_required
@require_POST
def connection_add(request):
    form = ConnectionForm(request.POST)
    if form.is_valid():
        try:
            connection = services.connection_create(user=request.user, **form.cleaned_data)
        except DomainError as exc:
            for field, message in exc.fields.items():
                form.add_error(field if field in form.fields else None, str(message))
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"Added {connection.label}. Use Test to check the key.")
            return redirect("exchanges:index")
    return _render(request, form=form, status=400)


@login_required
@require_POST
def connection_delete(request, pk: int):
    try:
        connection = selectors.connection_get(user=request.user, pk=pk)
    except NotFound:
        raise Http404("Exchange connection not found.") from None
    services.connection_delete(connection=connection)
    messages.success(request, f"Removed {connection.label}.")
    return redirect("exchanges:index")


@login_required
@require_POST
def paper_reset(request):
    account = services.paper_account_get_or_create(user=request.user)
    form = PaperBalancesForm(request.POST)
    if not form.is_valid():
        return _render(request, paper_form=form, status=400)
    try:
        services.paper_account_set_balances(account=account, balances=form.cleaned_data["balances"])
    except DomainError as exc:
        form.add_error("balances", exc.message + " " + "; ".join(f"{k}: {v}" for k, v in _flat(exc.fields)))
        return _render(request, paper_form=form, status=400)
    messages.success(request, "Paper account reset.")
    return redirect("exchanges:index")


def _flat(fields: dict) -> list[tuple[str, str]]:
    out = []
    for key, value in fields.items():
        if isinstance(value, dict):
            out.extend(_flat(value))
        else:
            out.append((key, str(value)))
    return out
