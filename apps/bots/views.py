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
from apps.bots.forms import BotForm, BotReplayForm, initial_from_research
from apps.core.errors import DomainError, NotFound, QuotaExceeded, ValidationFailed
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
        request,
        "bots/index.html",
        {"section": "Bots", "bots": selectors.bot_overview_list(user=request.user)},
    )


@login_required
def new(request):
    user_strategies = backtest_selectors.strategy_list(user=request.user).prefetch_related("versions")
    options = strategy_options(
        builtins=backtest_selectors.builtin_strategies(), user_strategies=user_strategies
    )
    versions = [
        (s.pk, v.version, v.created_at)
        for s in user_strategies
        for v in sorted(s.versions.all(), key=lambda v: -v.version)
    ]
    connections = [c for c in connection_list(user=request.user) if c.can_trade_spot or c.can_trade_futures]
    initial, source = {}, ""
    if request.method == "GET":
        try:
            initial, source = initial_from_research(user=request.user, query=request.GET)
        except NotFound as exc:
            raise Http404(exc.message) from None
    form = BotForm(
        request.POST or None, strategies=options, connections=connections, versions=versions, initial=initial
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                bot = services.bot_create(user=request.user, **form.to_service_kwargs())
            except ValidationFailed as exc:
                form.apply_errors(exc.message, exc.fields)
            except QuotaExceeded as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Created {bot.name}. Start it when you are ready.")
                if bot.source == bot.Source.WEBHOOK:
                    # Its secret URL is readable only now: show it on this answer.
                    return _detail(request, bot, webhook_token=bot.webhook_token)
                return redirect("bots:detail", pk=bot.pk)
        status = 400
    context = {
        "section": "Bots",
        "form": form,
        "strategies_json": [o.to_json() for o in options],
        "prefilled_from": source,
    }
    return render(request, "bots/new.html", context, status=status)


def _detail(request, bot, *, webhook_token: str | None = None, status: int = 200):
    events = Paginator(selectors.bot_event_list(bot=bot), 50).get_page(request.GET.get("page"))
    context = {
        "section": "Bots",
        "bot": bot,
        "events": events,
        "performance": selectors.bot_performance(bot=bot),
        "positions": [p for p in selectors.bot_position_list(bot=bot) if p.is_open],
        "open_orders": selectors.bot_order_list(bot=bot).open()[:100],
        "trades": selectors.bot_fill_list(bot=bot)[:20],
        "replay": selectors.bot_replay_list(bot=bot).first(),
        "replay_form": BotReplayForm(),
    }
    if bot.source == bot.Source.WEBHOOK:
        from apps.bots.signals_page import webhook_section

        context["webhook"] = webhook_section(request, bot, token=webhook_token)
    return render(request, "bots/detail.html", context, status=status)


@login_required
def detail(request, pk: int):
    return _detail(request, _get(request, pk))


@login_required
@require_POST
def webhook_rotate(request, pk: int):
    """A new secret URL for a webhook bot, shown on this answer only (never in a redirect or cookie)."""
    bot = _get(request, pk)
    try:
        token = services.bot_webhook_rotate(bot=bot)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("bots:detail", pk=bot.pk)
    return _detail(request, bot, webhook_token=token)


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
