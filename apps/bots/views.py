"""Bots pages: the list with lifecycle buttons, the create form, the detail with its live log."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.backtests import selectors as backtest_selectors
from apps.backtests.forms import strategy_options
from apps.bots import selectors, services
from apps.bots.forms import BotForm, BotReplayForm
from apps.core.errors import DomainError, NotFound, ValidationFailed
from apps.exchanges.selectors import connection_list

ACTIONS = {
    "start": services.bot_start,
    "pause": services.bot_pause,
    "resume": services.bot_resume,
    "stop": services.bot_stop,
}


def _get(request, pk: int):
    try:
        return selectors.bot_get(user=request.user, pk=pk)
    except NotFound:
        raise Http404("Bot not found.") from None


@login_required
def index(request):
    # A user runs a handful of bots, not thousands: one page, no pagination.
    return render(
        request, "bots/index.html", {"section": "Bots", "bots": selectors.bot_list(user=request.user)}
    )


@login_required
def new(request):
    options = strategy_options(
        builtins=backtest_selectors.builtin_strategies(),
        user_strategies=backtest_selectors.strategy_list(user=request.user),
    )
    connections = [c for c in connection_list(user=request.user) if c.can_trade_spot or c.can_trade_futures]
    form = BotForm(request.POST or None, strategies=options, connections=connections)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                bot = services.bot_create(user=request.user, **form.to_service_kwargs())
            except ValidationFailed as exc:
                form.apply_errors(exc.message, exc.fields)
            else:
                messages.success(request, f"Created {bot.name}. Start it when you are ready.")
                return redirect("bots:detail", pk=bot.pk)
        status = 400
    context = {"section": "Bots", "form": form, "strategies_json": [o.to_json() for o in options]}
    return render(request, "bots/new.html", context, status=status)


@login_required
def detail(request, pk: int):
    bot = _get(request, pk)
    events = Paginator(selectors.bot_event_list(bot=bot), 50).get_page(request.GET.get("page"))
    context = {
        "section": "Bots",
        "bot": bot,
        "events": events,
        "replay": selectors.bot_replay_list(bot=bot).first(),
        "replay_form": BotReplayForm(),
    }
    return render(request, "bots/detail.html", context)


@login_required
@require_POST
def replay(request, pk: int):
    """Start a replay (forward test) of the bot over the period of the form."""
    bot = _get(request, pk)
    form = BotReplayForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect("bots:detail", pk=bot.pk)
    try:
        services.bot_replay_create(bot=bot, start=form.cleaned_data["start"], end=form.cleaned_data["end"])
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{bot.name}: replay queued.")
    return redirect("bots:detail", pk=bot.pk)


@login_required
@require_POST
def action(request, pk: int, name: str):
    bot = _get(request, pk)
    service = ACTIONS.get(name)
    if service is None:
        raise Http404("Unknown action.")
    kwargs = {"close_position": request.POST.get("close_position") == "on"} if name == "stop" else {}
    try:
        bot = service(bot=bot, **kwargs)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{bot.name}: {bot.get_status_display().lower()}.")
    # Back to where the button was (never to an address taken from the request).
    return (
        redirect("bots:detail", pk=bot.pk) if request.POST.get("from") == "detail" else redirect("bots:index")
    )
