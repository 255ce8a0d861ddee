"""Backtests dashboard pages with the Django test client: login, owner scoping, forms onto the services."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from apps.backtests.models import BacktestRun, Optimization, Strategy
from apps.backtests.optimization import optimization_create
from apps.backtests.services import backtest_create, backtest_execute, strategy_create
from apps.core.jobs import JobStatus
from tests.backtests.api_support import SMA_BODY, USER_SIGNAL_CODE, import_candles

pytestmark = pytest.mark.django_db

SMA = "builtin:sma_crossover"
SMA_SLUG = "builtin-sma_crossover"


@pytest.fixture
def candles_1h(shared_data_dir):
    import_candles(shared_data_dir, "1h")


@pytest.fixture
def browser_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def done_run(user, candles_1h):
    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    assert backtest_execute(run_id=run.id) == JobStatus.COMPLETED
    run.refresh_from_db()
    return run


@pytest.fixture
def other_run(other_user, candles_1h):
    return backtest_create(user=other_user, data=dict(SMA_BODY), enqueue=False)


OPT_BODY = {**SMA_BODY, "params": {}, "kind": "grid", "space": {"fast": [5, 10], "slow": [30, 40]}}


def _form_data(**overrides):
    data = {
        "strategy": SMA,
        "market": "binance|BTC/USDT",
        "timeframe": "1h",
        "start": "2024-01-01",
        "end": "2024-03-01",
        "initial_cash": "5000",
        "fee_percent": "0.1",
        "slippage_percent": "0.05",
        "market_type": "spot",
        "leverage": "1",
        "margin_mode": "isolated",
        "sizing_type": "percent_equity",
        "sizing_value": "50",
        f"p__{SMA_SLUG}__fast": "12",
        f"p__{SMA_SLUG}__slow": "40",
    }
    data.update(overrides)
    return data


PAGES = [
    ("backtests:index", {}),
    ("backtests:new", {}),
    ("backtests:detail", {"pk": 1}),
    ("backtests:compare", {}),
    ("backtests:strategies", {}),
    ("backtests:strategy_new", {}),
    ("backtests:strategy_edit", {"pk": 1}),
    ("backtests:optimizations", {}),
    ("backtests:optimization_new", {}),
    ("backtests:optimization", {"pk": 1}),
]


@pytest.mark.parametrize(("name", "kwargs"), PAGES)
def test_every_page_requires_login(client, name, kwargs):
    url = reverse(name, kwargs=kwargs)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_runs_list_shows_own_runs_only(browser_client, done_run, other_run):
    response = browser_client.get(reverse("backtests:index"))
    assert response.status_code == 200
    runs = list(response.context["runs"])
    assert runs == [done_run]
    html = response.content.decode()
    assert f'data-run="{done_run.pk}"' in html
    assert f'data-run="{other_run.pk}"' not in html
    assert response.context["section"] == "Backtests"


def test_form_fields_are_generated_from_each_strategy_schema(browser_client, candles_1h):
    response = browser_client.get(reverse("backtests:new"))
    assert response.status_code == 200
    form = response.context["form"]
    fast = form.fields[f"p__{SMA_SLUG}__fast"]
    assert (fast.initial, fast.min_value) == (20, 2)
    exit_at = form.fields["p__builtin-bollinger_mean_reversion__exit_at"]
    assert [c for c, _ in exit_at.choices] == ["middle", "upper"]
    html = response.content.decode()
    assert f'name="p__{SMA_SLUG}__fast"' in html
    assert 'value="binance|BTC/USDT"' in html  # the market with stored candles


def test_form_prefills_from_the_query_string(browser_client, candles_1h):
    url = reverse("backtests:new") + f"?strategy={SMA}&p__{SMA_SLUG}__fast=7"
    form = browser_client.get(url).context["form"]
    assert form[f"p__{SMA_SLUG}__fast"].value() == "7"
    assert form["strategy"].value() == SMA


def test_form_post_creates_the_run_through_the_service(browser_client, user, candles_1h):
    response = browser_client.post(reverse("backtests:new"), _form_data(name="first try"))
    run = BacktestRun.objects.get(owner=user)
    assert response.status_code == 302
    assert response["Location"] == reverse("backtests:detail", kwargs={"pk": run.pk})
    assert run.status == JobStatus.PENDING
    assert (run.name, run.strategy_name, run.params) == (
        "first try",
        "sma_crossover",
        {"fast": 12, "slow": 40},
    )
    assert (run.exchange, run.symbol, run.timeframe) == ("binance", "BTC/USDT", "1h")
    assert run.start.isoformat() == "2024-01-01T00:00:00+00:00"
    assert str(run.initial_cash.normalize()) == "5E+3"
    # Percent inputs reach the engine config as fractions.
    assert run.config["sizing"] == {"type": "percent_equity", "value": 0.5}
    assert run.config["fee"]["taker"] == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("funding", "rate", "source", "rates"),
    [("", "", "history", None), ("none", "", "none", None), ("constant", "0.01", "constant", 0.0001)],
)
def test_form_chooses_where_a_futures_runs_funding_comes_from(
    browser_client, user, candles_1h, funding, rate, source, rates
):
    data = _form_data(market_type="futures", leverage="2", funding=funding, funding_rate_percent=rate)
    assert browser_client.post(reverse("backtests:new"), data).status_code == 302
    run = BacktestRun.objects.get(owner=user)
    assert (run.funding_source, run.config.get("funding_rates")) == (source, rates)


def test_form_asks_for_the_rate_of_a_constant_funding(browser_client, user, candles_1h):
    data = _form_data(market_type="futures", leverage="2", funding="constant")
    response = browser_client.post(reverse("backtests:new"), data)
    assert response.status_code in (200, 400)
    assert "funding_rate_percent" in response.context["form"].errors
    assert not BacktestRun.objects.filter(owner=user).exists()


def test_form_shows_service_errors_next_to_the_inputs(browser_client, user, candles_1h):
    # fast >= slow is a cross-field rule of the strategy itself (ParamError from the service).
    response = browser_client.post(
        reverse("backtests:new"), _form_data(**{f"p__{SMA_SLUG}__fast": "50", f"p__{SMA_SLUG}__slow": "40"})
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors, "the service's validation error must be shown"
    assert any(key.startswith(f"p__{SMA_SLUG}__") for key in form.errors)
    assert not BacktestRun.objects.filter(owner=user).exists()

    response = browser_client.post(reverse("backtests:new"), _form_data(start="2030-01-01", end="2030-02-01"))
    assert response.status_code == 200
    assert "start" in response.context["form"].errors or response.context["form"].non_field_errors()
    assert not BacktestRun.objects.filter(owner=user).exists()


def test_form_rejects_out_of_bounds_parameters_before_the_service(browser_client, user, candles_1h):
    response = browser_client.post(reverse("backtests:new"), _form_data(**{f"p__{SMA_SLUG}__fast": "1"}))
    assert response.status_code == 200
    assert f"p__{SMA_SLUG}__fast" in response.context["form"].errors
    assert not BacktestRun.objects.filter(owner=user).exists()


def test_run_page_for_owner_and_404_for_others(browser_client, done_run, other_run):
    response = browser_client.get(reverse("backtests:detail", kwargs={"pk": done_run.pk}))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="chart-price"' in html and 'id="chart-equity"' in html and 'id="trades-table"' in html
    assert "vendor/plotly/plotly.min.js" in html
    assert f"/api/v1/backtests/{done_run.pk}/trades/export/" in html
    assert response.context["page_data"]["api"] == f"/api/v1/backtests/{done_run.pk}/"

    assert browser_client.get(reverse("backtests:detail", kwargs={"pk": other_run.pk})).status_code == 404
    assert browser_client.get(reverse("backtests:detail", kwargs={"pk": 999999})).status_code == 404


def test_compare_page_scopes_every_id(browser_client, user, done_run, other_run):
    second = backtest_create(user=user, data={**SMA_BODY, "params": {"fast": 5, "slow": 20}}, enqueue=False)
    url = reverse("backtests:compare")
    response = browser_client.get(f"{url}?ids={done_run.pk},{second.pk}")
    assert response.status_code == 200
    assert response.context["page_data"]["ids"] == [done_run.pk, second.pk]
    assert browser_client.get(f"{url}?ids={done_run.pk},{other_run.pk}").status_code == 404
    assert browser_client.get(f"{url}?ids=1,x").status_code == 404


def test_strategy_pages_list_builtins_and_own_code(browser_client, user, other_user):
    mine = strategy_create(user=user, source=USER_SIGNAL_CODE)
    theirs = strategy_create(user=other_user, source=USER_SIGNAL_CODE, name="theirs")
    response = browser_client.get(reverse("backtests:strategies"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "sma_crossover" in html and "donchian_breakout" in html
    assert list(response.context["strategies"]) == [mine]
    assert "theirs" not in html

    editor = browser_client.get(reverse("backtests:strategy_edit", kwargs={"pk": mine.pk}))
    assert editor.status_code == 200
    assert editor.context["page_data"]["source"] == mine.source
    assert "vendor/codemirror/codemirror.min.js" in editor.content.decode()
    assert browser_client.get(reverse("backtests:strategy_edit", kwargs={"pk": theirs.pk})).status_code == 404

    new = browser_client.get(reverse("backtests:strategy_new"))
    assert new.status_code == 200
    assert "class MyStrategy(SignalStrategy)" in new.context["page_data"]["source"]


def test_new_strategy_template_is_valid_user_code():
    from apps.backtests.services import strategy_validate
    from apps.backtests.views import STRATEGY_TEMPLATE

    check = strategy_validate(source=STRATEGY_TEMPLATE)
    assert check.valid, check.to_dict()


def test_user_strategy_appears_in_the_run_form_with_its_schema(browser_client, user, candles_1h):
    mine = strategy_create(user=user, source=USER_SIGNAL_CODE)
    form = browser_client.get(reverse("backtests:new")).context["form"]
    assert f"user:{mine.pk}" in [value for value, _ in form.fields["strategy"].choices]
    assert form.fields[f"p__user-{mine.pk}__fast"].initial == 10

    response = browser_client.post(
        reverse("backtests:new"),
        _form_data(
            strategy=f"user:{mine.pk}", **{f"p__user-{mine.pk}__fast": "8", f"p__user-{mine.pk}__slow": "21"}
        ),
    )
    assert response.status_code == 302
    run = BacktestRun.objects.get(owner=user)
    assert (run.strategy_id, run.code_version, run.params) == (mine.pk, 1, {"fast": 8, "slow": 21})


def test_optimization_form_builds_the_search_space(browser_client, user, candles_1h):
    assert browser_client.get(reverse("backtests:optimization_new")).status_code == 200
    data = _form_data(
        kind="grid",
        objective="sharpe_ratio",
        maximize="on",
        **{f"s__{SMA_SLUG}__fast": "5:15:5", f"s__{SMA_SLUG}__slow": "30,40"},
    )
    response = browser_client.post(reverse("backtests:optimization_new"), data)
    optimization = Optimization.objects.get(owner=user)
    assert response.status_code == 302
    assert response["Location"] == reverse("backtests:optimization", kwargs={"pk": optimization.pk})
    assert optimization.kind == "grid"
    assert optimization.space == {"fast": {"min": 5, "max": 15, "step": 5}, "slow": [30, 40]}
    assert optimization.total == 6
    assert optimization.params == {}


def test_optimization_form_needs_a_search_range_and_shows_walk_forward_options(
    browser_client, user, candles_1h
):
    response = browser_client.post(
        reverse("backtests:optimization_new"), _form_data(kind="grid", objective="sharpe_ratio")
    )
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()

    data = _form_data(
        kind="walk_forward",
        objective="total_return",
        maximize="on",
        windows="3",
        in_sample_percent="70",
        **{f"s__{SMA_SLUG}__fast": "5,10"},
    )
    response = browser_client.post(reverse("backtests:optimization_new"), data)
    assert response.status_code == 302
    optimization = Optimization.objects.get(owner=user)
    assert optimization.kind == "walk_forward"
    assert optimization.walk_forward_options["windows"] == 3
    assert optimization.walk_forward_options["in_sample_fraction"] == pytest.approx(0.7)
    page = browser_client.get(reverse("backtests:optimization", kwargs={"pk": optimization.pk}))
    assert page.status_code == 200
    assert page.templates[0].name == "backtests/walk_forward.html"


def test_optimization_pages_are_scoped_to_the_owner(browser_client, user, other_user, candles_1h):
    mine = optimization_create(user=user, data=dict(OPT_BODY), enqueue=False)
    theirs = optimization_create(user=other_user, data=dict(OPT_BODY), enqueue=False)
    listing = browser_client.get(reverse("backtests:optimizations"))
    assert listing.status_code == 200
    assert list(listing.context["optimizations"]) == [mine]
    page = browser_client.get(reverse("backtests:optimization", kwargs={"pk": mine.pk}))
    assert page.status_code == 200
    assert page.templates[0].name == "backtests/optimization.html"
    assert page.context["page_data"]["params"] == ["fast", "slow"]
    assert browser_client.get(reverse("backtests:optimization", kwargs={"pk": theirs.pk})).status_code == 404


def test_vendored_codemirror_and_page_assets_are_served_from_static():
    for path in (
        "vendor/codemirror/codemirror.min.js",
        "vendor/codemirror/python.min.js",
        "vendor/codemirror/codemirror.css",
        "vendor/codemirror/LICENSE",
        "vendor/plotly/plotly.min.js",
        "backtests/common.js",
        "backtests/run.js",
        "backtests/backtests.css",
    ):
        assert finders.find(path), path


def test_strategy_model_is_untouched_by_page_views(browser_client, user):
    # Opening the editor never writes: saving goes through the API (a new version per change).
    browser_client.get(reverse("backtests:strategy_new"))
    assert not Strategy.objects.filter(owner=user).exists()


def test_failed_run_page_shows_the_user_code_error_with_its_line(browser_client, user, candles_1h):
    from tests.backtests.api_support import USER_BROKEN_CODE

    strategy = strategy_create(user=user, source=USER_BROKEN_CODE)
    run = backtest_create(
        user=user,
        data={**SMA_BODY, "strategy": None, "strategy_id": strategy.pk, "params": {}},
        enqueue=False,
    )
    assert backtest_execute(run_id=run.id) == JobStatus.FAILED
    run.refresh_from_db()
    response = browser_client.get(reverse("backtests:detail", kwargs={"pk": run.pk}))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Line {run.error_line}:" in html
    assert run.error_line == 7
    assert 'id="progress-card" hidden' in html


def test_run_page_embeds_the_stored_monte_carlo_report(browser_client, done_run):
    from apps.backtests.services import backtest_monte_carlo

    url = reverse("backtests:detail", kwargs={"pk": done_run.pk})
    assert browser_client.get(url).context["page_data"]["monte_carlo"] is None
    report = backtest_monte_carlo(run=done_run, simulations=50, method="shuffle", seed=1)
    embedded = browser_client.get(url).context["page_data"]["monte_carlo"]
    assert embedded["simulations"] == 50
    assert embedded["total_return"] == report["total_return"]


def test_runs_list_filters_and_strategy_performance(browser_client, user, done_run):
    pending = backtest_create(user=user, data={**SMA_BODY, "timeframe": "4h"}, enqueue=False)
    url = reverse("backtests:index")
    assert list(browser_client.get(f"{url}?status=completed").context["runs"]) == [done_run]
    assert list(browser_client.get(f"{url}?timeframe=4h").context["runs"]) == [pending]
    assert list(browser_client.get(f"{url}?symbol=ETH/USDT").context["runs"]) == []
    # A bad filter is explained, not a server error.
    response = browser_client.get(f"{url}?status=bogus")
    assert response.status_code == 200
    assert response.context["filter_error"]
    assert len(response.context["runs"]) == 2
    performance = response.context["performance"]
    assert [(row["strategy_name"], row["runs"]) for row in performance] == [("sma_crossover", 1)]
    assert 'id="performance-table"' in response.content.decode()
