"""Backtests dashboard: thin pages over ``apps.backtests.selectors`` / ``services`` and the JSON API.

Forms post to views that call the same services as the API (so the rules and
the error messages are the API's); result pages render a shell and their
scripts read the run's JSON endpoints with the session cookie.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.backtests import selectors, services
from apps.backtests.engine import METRIC_NAMES
from apps.backtests.forms import BacktestForm, OptimizationForm, StrategyOption, strategy_options
from apps.backtests.optimization import optimization_create
from apps.core.errors import NotFound, QuotaExceeded, ValidationFailed
from apps.core.jobs import JobStatus
from apps.marketdata.selectors import markets_with_candles

SECTION = "Backtests"
PAGE_SIZE = 25
MAX_COMPARE = 10

# SignalStrategy, Strategy, Param, Signals and indicators are provided to user code (no import needed).
STRATEGY_TEMPLATE = '''class MyStrategy(SignalStrategy):
    """Long when the fast SMA crosses above the slow one; out when it crosses back."""

    name = "my_strategy"
    description = "SMA crossover written in the editor"
    params = {
        "fast": Param("int", 20, min=2, max=500, help="fast SMA period"),
        "slow": Param("int", 50, min=3, max=1000, help="slow SMA period"),
    }

    def signals(self, data):
        fast = indicators.sma(data.close, self.p.fast)
        slow = indicators.sma(data.close, self.p.slow)
        return Signals(
            long_entries=indicators.crossed_above(fast, slow),
            long_exits=indicators.crossed_below(fast, slow),
        )
'''


def _page(request: HttpRequest, template: str, context: dict[str, Any] | None = None) -> HttpResponse:
    return render(
        request, f"backtests/{template}", {"section": SECTION, "api_base": _api_base(), **(context or {})}
    )


def _or_404(selector, **kwargs):
    # Selectors raise the domain NotFound (another user's object included); pages answer a plain 404.
    try:
        return selector(**kwargs)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _api_base() -> str:
    return reverse("backtests-api:run-list")


def _market_choices() -> list[tuple[str, str]]:
    """Markets that have stored candles (an EXISTS probe on the candle index per market)."""
    markets = markets_with_candles().order_by("symbol")
    return [(f"{m.exchange.slug}|{m.symbol}", f"{m.symbol} · {m.exchange.name}") for m in markets]


def _strategy_options(user) -> list[StrategyOption]:
    return strategy_options(
        builtins=selectors.builtin_strategies(), user_strategies=selectors.strategy_list(user=user)
    )


def _form_context(form) -> dict[str, Any]:
    return {
        "form": form,
        "strategies_json": [o.to_json() for o in form.strategies],
        "has_markets": bool(form.fields["market"].choices),
    }


def _pct(value: Any) -> str:
    return f"{float(value) * 100:.3g}%"


def _describe_option(key: str, value: Any) -> str:
    """A run's engine config option in words (the page shows the exact spec it ran with)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, dict):
        return str(value)
    kind = value.get("type")
    if key == "fee" and kind == "percentage":
        return f"{_pct(value.get('maker', 0))} maker / {_pct(value.get('taker', 0))} taker"
    if key == "slippage" and kind == "percentage":
        return f"{_pct(value.get('value', 0))} of price"
    if key == "sizing" and kind in ("percent_equity", "risk_per_trade"):
        return f"{_pct(value.get('value', 0))} " + (
            "of equity" if kind == "percent_equity" else "risked per trade"
        )
    if key == "sizing":
        return f"{value.get('value')} ({str(kind).replace('_', ' ')})"
    rest = ", ".join(f"{k}={v}" for k, v in value.items() if k != "type")
    return f"{kind}: {rest}" if kind else rest


def _config_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    skip = {"initial_cash", "start", "end"}
    return [
        (key.replace("_", " ").capitalize(), _describe_option(key, value))
        for key, value in (config or {}).items()
        if key not in skip and value not in (None, {}, [], "")
    ]


def _monte_carlo(run) -> dict[str, Any] | None:
    """The run's last stored Monte Carlo report, shown with the results (None until one is run)."""
    if run.status != JobStatus.COMPLETED:
        return None
    try:
        return selectors.backtest_monte_carlo_get(run=run)
    except NotFound:
        return None


def _describe_space(space: dict[str, Any]) -> list[tuple[str, str]]:
    """``{"fast": {"min": 5, "max": 40, "step": 5}, "slow": [30, 50]}`` -> readable ranges."""
    rows = []
    for name, axis in (space or {}).items():
        if isinstance(axis, dict):
            text = f"{axis.get('min')} → {axis.get('max')}" + (
                f" step {axis['step']}" if axis.get("step") else ""
            )
        elif isinstance(axis, list | tuple):
            text = ", ".join(str(v) for v in axis)
        else:
            text = str(axis)
        rows.append((name, text))
    return rows


# ------------------------------------------------------------------ runs
RUN_FILTERS = ("status", "strategy", "symbol", "timeframe")


@login_required
def index(request: HttpRequest) -> HttpResponse:
    filters = {key: request.GET[key] for key in RUN_FILTERS if request.GET.get(key)}
    error = None
    try:
        queryset = selectors.backtest_list(user=request.user, filters=filters)
    except ValidationFailed as exc:
        error, filters = exc.message, {}
        queryset = selectors.backtest_list(user=request.user)
    runs = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    return _page(
        request,
        "index.html",
        {
            "runs": runs,
            "filters": filters,
            "filter_error": error,
            "filter_query": urlencode(filters),
            "status_choices": JobStatus.choices,
            "performance": selectors.strategy_performance(user=request.user),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def backtest_new(request: HttpRequest) -> HttpResponse:
    options = _strategy_options(request.user)
    markets = _market_choices()
    if request.method == "POST":
        form = BacktestForm(request.POST, strategies=options, markets=markets)
        if form.is_valid():
            try:
                run = services.backtest_create(user=request.user, data=form.to_body())
            except ValidationFailed as exc:
                form.apply_errors(exc.message, exc.fields)
            except QuotaExceeded as exc:
                form.add_error(None, exc.message)
            else:
                return redirect("backtests:detail", pk=run.pk)
    else:
        # Links prefill the form from the query string (strategy, market, p__<strategy>__<param> ...).
        form = BacktestForm(initial=request.GET.dict(), strategies=options, markets=markets)
    return _page(request, "new.html", _form_context(form))


@login_required
def backtest_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _or_404(selectors.backtest_get, user=request.user, pk=pk)
    api = reverse("backtests-api:run-detail", kwargs={"pk": run.pk})
    return _page(
        request,
        "detail.html",
        {
            "run": run,
            "config_rows": _config_rows(run.config),
            "page_data": {"id": run.pk, "api": api, "status": run.status, "monte_carlo": _monte_carlo(run)},
        },
    )


@login_required
def compare(request: HttpRequest) -> HttpResponse:
    raw = request.GET.getlist("ids") or request.GET.get("ids", "").split(",")
    try:
        ids = list(dict.fromkeys(int(value) for value in ",".join(raw).split(",") if value.strip()))
    except ValueError:
        raise Http404("ids must be run numbers") from None
    runs = [_or_404(selectors.backtest_get, user=request.user, pk=pk) for pk in ids[:MAX_COMPARE]]
    return _page(
        request,
        "compare.html",
        {"runs": runs, "page_data": {"ids": [run.pk for run in runs], "metrics": list(METRIC_NAMES)}},
    )


# ------------------------------------------------------------------ strategies
@login_required
def strategy_list(request: HttpRequest) -> HttpResponse:
    return _page(
        request,
        "strategies.html",
        {
            "builtins": selectors.builtin_strategies(),
            "strategies": selectors.strategy_list(user=request.user),
        },
    )


@login_required
def strategy_new(request: HttpRequest) -> HttpResponse:
    return _page(
        request, "editor.html", {"strategy": None, "page_data": {"id": None, "source": STRATEGY_TEMPLATE}}
    )


@login_required
def strategy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    strategy = _or_404(selectors.strategy_get, user=request.user, pk=pk)
    return _page(
        request,
        "editor.html",
        {
            "strategy": strategy,
            "page_data": {"id": strategy.pk, "source": strategy.source, "version": strategy.version},
        },
    )


# ------------------------------------------------------------------ optimizations
@login_required
def optimization_list(request: HttpRequest) -> HttpResponse:
    items = Paginator(selectors.optimization_list(user=request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return _page(request, "optimizations.html", {"optimizations": items})


@login_required
@require_http_methods(["GET", "POST"])
def optimization_new(request: HttpRequest) -> HttpResponse:
    options = _strategy_options(request.user)
    markets = _market_choices()
    if request.method == "POST":
        form = OptimizationForm(request.POST, strategies=options, markets=markets)
        if form.is_valid():
            try:
                optimization = optimization_create(user=request.user, data=form.to_body())
            except ValidationFailed as exc:
                form.apply_errors(exc.message, exc.fields)
            except QuotaExceeded as exc:
                form.add_error(None, exc.message)
            else:
                return redirect("backtests:optimization", pk=optimization.pk)
    else:
        form = OptimizationForm(initial=request.GET.dict(), strategies=options, markets=markets)
    return _page(request, "optimization_new.html", _form_context(form))


@login_required
def optimization_detail(request: HttpRequest, pk: int) -> HttpResponse:
    optimization = _or_404(selectors.optimization_get, user=request.user, pk=pk)
    api = reverse("backtests-api:optimization-detail", kwargs={"pk": optimization.pk})
    template = "walk_forward.html" if optimization.kind == "walk_forward" else "optimization.html"
    return _page(
        request,
        template,
        {
            "optimization": optimization,
            "space_rows": _describe_space(optimization.space),
            "page_data": {
                "id": optimization.pk,
                "api": api,
                "status": optimization.status,
                "params": list(optimization.space or {}),
                "objective": optimization.objective,
                "metrics": list(METRIC_NAMES),
            },
        },
    )
