"""The backtests dashboard in headless Chromium against the real ASGI server and a real Celery worker.

A trader fills the backtest form, watches the progress bar finish (live events over
the WebSocket, status polling as the fallback), sees every chart render without a
console error, sorts and pages the trades, and downloads the trades CSV.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.backtests.models import BacktestResultData, BacktestRun, BacktestTrade, Optimization
from apps.core.events import publish_event
from apps.core.jobs import JobStatus
from tests.backtests.api_support import USER_SIGNAL_CODE, import_candles
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]

SMA_SLUG = "builtin-sma_crossover"
RUN_TIMEOUT = 60_000
# Saving user code validates it in the sandbox (a fresh process, twice): seconds on a loaded 2-core machine.
SANDBOX_WAIT = 20_000


@pytest.fixture
def trader(shared_data_dir):
    import_candles(shared_data_dir, "1h")
    return UserFactory()


def log_in(page, user) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on", timeout=15000)


def fill_market(page) -> None:
    page.select_option("select[name=market]", "binance|BTC/USDT")
    page.select_option("select[name=timeframe]", "1h")
    page.fill("input[name=start]", "2024-01-01")
    page.fill("input[name=end]", "2024-07-01")


def test_backtest_from_the_form_to_charts_and_csv(page, celery_worker, trader):
    log_in(page, trader)
    page.click("nav.nav >> text=Backtests")
    page.click(".subnav >> text=New backtest")

    page.select_option("select[name=strategy]", "builtin:sma_crossover")
    # Only the selected strategy's generated parameter inputs are shown.
    expect(page.locator(f"input[name=p__{SMA_SLUG}__fast]")).to_be_visible()
    expect(page.locator("input[name=p__builtin-rsi_mean_reversion__period]")).to_be_hidden()
    page.fill(f"input[name=p__{SMA_SLUG}__fast]", "10")
    page.fill(f"input[name=p__{SMA_SLUG}__slow]", "30")
    page.fill("input[name=name]", "browser sma")
    fill_market(page)
    page.click("#run-button")

    expect(page).to_have_url(re.compile(r"/backtests/\d+/$"))
    run = BacktestRun.objects.get(owner=trader)
    assert run.params == {"fast": 10, "slow": 30}
    expect(page.locator("h1")).to_contain_text(f"Backtest #{run.pk}")

    # The progress bar is on the page and ends at 100% once the worker has finished.
    bar = page.locator("#run-progress")
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=RUN_TIMEOUT)
    assert bar.get_attribute("data-trail").split(",")[-1] == "100"
    expect(page.locator("body")).to_have_attribute("data-run-status", "completed", timeout=RUN_TIMEOUT)
    expect(page.locator("#run-status .badge")).to_have_text("completed")
    expect(page.locator("body")).to_have_attribute("data-results-ready", "1", timeout=30000)
    run.refresh_from_db()
    assert run.status == JobStatus.COMPLETED

    for chart in ("chart-price", "chart-equity", "chart-drawdown", "chart-monthly"):
        node = page.locator(f"#{chart}")
        expect(node).to_have_attribute("data-rendered", "1")
        expect(node.locator(".main-svg").first).to_be_visible()
    traces = page.evaluate(
        "document.getElementById('chart-price').data.map(t => t.type + ':' + (t.name || ''))"
    )
    assert traces[0].startswith("candlestick")
    assert any(t.startswith("scatter:Long entry") for t in traces) and any(
        t.startswith("scatter:Exit") for t in traces
    )

    total_return = page.locator('.metric[data-metric="total_return"] .value')
    expect(total_return).to_have_text(f"{run.total_return * 100:,.2f}%")
    expect(page.locator("#metric-cards .metric")).to_have_count(14)
    # Money amounts in "All metrics" are amounts in the quote currency, not percentages.
    metrics = BacktestResultData.objects.get(run=run).metrics
    for name in ("avg_loss", "largest_win", "net_profit"):
        text = page.locator(f'#all-metrics tr[data-metric="{name}"] td').text_content()
        assert "%" not in text, (name, text)
        assert float(text.replace(",", "")) == pytest.approx(metrics[name], abs=0.01), (name, text)

    # Trades table: server-side sorting and paging.
    trades = run.trades.count()
    assert trades > 25, "the range must give more than one page of trades"
    rows = page.locator("#trades-table tbody tr")
    expect(rows).to_have_count(25)
    expect(page.locator("#trades-page")).to_contain_text(f"{trades} trades")
    page.click('#trades-table th[data-order="pnl"]')
    expect(page.locator('#trades-table th[data-order="pnl"]')).to_have_class(re.compile("sorted-asc"))
    worst = BacktestTrade.objects.filter(run=run).order_by("pnl").first()
    expect(rows.first.locator("td").first).to_have_text(str(worst.n))
    page.click("#trades-next")
    expect(page.locator("#trades-page")).to_contain_text("Page 2")

    # CSV export of every trade.
    with page.expect_download() as download_info:
        page.click("#export-link")
    download = download_info.value
    assert download.suggested_filename == f"backtest-{run.pk}-trades.csv"
    content = Path(download.path()).read_text(encoding="utf-8")
    records = list(csv.DictReader(io.StringIO(content)))
    assert len(records) == trades
    assert {"entry_time", "exit_time", "side", "pnl"} <= set(records[0])

    # Monte Carlo robustness from the results page.
    page.fill("#mc-simulations", "200")
    page.click("#mc-run")
    expect(page.locator("#chart-monte-carlo")).to_have_attribute("data-rendered", "1", timeout=30000)
    expect(page.locator('#mc-table tr[data-metric="total_return"] td')).to_have_count(5)
    expect(page.locator("#mc-status")).to_contain_text("200 simulations")

    # The run shows in the list with its headline numbers.
    page.click(".subnav >> text=Runs")
    expect(page.locator(f'tr[data-run="{run.pk}"] .badge')).to_have_text("completed")
    assert page.console_errors == []


def test_editor_validates_on_save_and_compare_runs(page, celery_worker, trader):
    log_in(page, trader)
    page.goto("/backtests/strategies/new/")
    expect(page.locator(".CodeMirror")).to_be_visible()
    # Python highlighting from the vendored CodeMirror mode.
    expect(page.locator(".CodeMirror .cm-keyword").first).to_be_visible()

    broken = USER_SIGNAL_CODE.replace("return Signals(", "return Signals(\n        open('/etc/passwd'),")
    page.evaluate("(source) => window.strategyEditor.setValue(source)", broken)
    page.click("#save-button")
    issue = page.locator("#issues li").first
    expect(issue).to_contain_text(re.compile(r"Line \d+"), timeout=SANDBOX_WAIT)
    expect(page.locator(".CodeMirror .issue-marker").first).to_be_visible()
    assert not trader.strategies.exists()

    page.evaluate("(source) => window.strategyEditor.setValue(source)", USER_SIGNAL_CODE)
    page.click("#save-button")
    expect(page.locator("#editor-status")).to_have_text("Saved version 1.", timeout=SANDBOX_WAIT)
    expect(page.locator("#issues li")).to_have_count(0)
    strategy = trader.strategies.get()
    expect(page).to_have_url(re.compile(rf"/backtests/strategies/{strategy.pk}/$"))

    # Change the code and save with the keyboard: a new version.
    page.evaluate("() => window.strategyEditor.setValue(window.strategyEditor.getValue() + '\\n# tweak\\n')")
    page.click(".CodeMirror")
    page.keyboard.press("Control+s")
    expect(page.locator("#editor-status")).to_have_text("Saved version 2.", timeout=SANDBOX_WAIT)
    expect(page.locator("#versions li")).to_have_count(2)
    page.reload()
    expect(page.locator("#versions li")).to_have_count(2)
    assert "# tweak" in page.evaluate("window.strategyEditor.getValue()")
    page.click('#versions li[data-version="1"] button')
    assert "# tweak" not in page.evaluate("window.strategyEditor.getValue()")
    page.click("#save-button")
    expect(page.locator("#editor-status")).to_have_text("Saved version 3.", timeout=SANDBOX_WAIT)

    # Run it twice from the form, then compare.
    ids = []
    for fast in ("8", "12"):
        page.goto(f"/backtests/new/?strategy=user:{strategy.pk}")
        page.fill(f"input[name=p__user-{strategy.pk}__fast]", fast)
        fill_market(page)
        page.click("#run-button")
        expect(page.locator("body")).to_have_attribute("data-results-ready", "1", timeout=RUN_TIMEOUT)
        ids.append(int(re.search(r"/backtests/(\d+)/", page.url).group(1)))
    assert BacktestRun.objects.get(pk=ids[0]).code_version == 3

    page.goto("/backtests/")
    for pk in ids:
        page.check(f'.compare-pick[value="{pk}"]')
    page.click("#compare-button")
    expect(page).to_have_url(re.compile(r"/backtests/compare/\?ids="))
    expect(page.locator("#chart-compare")).to_have_attribute("data-rendered", "1", timeout=15000)
    expect(page.locator('#compare-table tr[data-metric="total_return"] td')).to_have_count(2)

    # Delete one from its page.
    page.goto(f"/backtests/{ids[1]}/")
    expect(page.locator("body")).to_have_attribute("data-results-ready", "1", timeout=RUN_TIMEOUT)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-button")
    expect(page).to_have_url(re.compile(r"/backtests/$"))
    expect(page.locator(f'tr[data-run="{ids[1]}"]')).to_have_count(0)
    assert not BacktestRun.objects.filter(pk=ids[1]).exists()
    assert page.console_errors == []


def test_optimization_page_shows_table_and_heatmap(page, celery_worker, trader):
    log_in(page, trader)
    page.goto("/backtests/optimizations/new/")
    page.select_option("select[name=kind]", "grid")
    page.select_option("select[name=strategy]", "builtin:sma_crossover")
    page.fill(f"input[name=s__{SMA_SLUG}__fast]", "5:15:5")
    page.fill(f"input[name=s__{SMA_SLUG}__slow]", "30,40")
    fill_market(page)
    page.click("#optimization-form button[type=submit]")

    expect(page).to_have_url(re.compile(r"/backtests/optimizations/\d+/$"))
    expect(page.locator("body")).to_have_attribute("data-results-ready", "1", timeout=RUN_TIMEOUT)
    optimization = Optimization.objects.get(owner=trader)
    assert optimization.status == JobStatus.COMPLETED
    expect(page.locator("#trials-table tbody tr")).to_have_count(6)
    expect(page.locator("#trials-table tbody tr.best")).to_have_count(1)
    expect(page.locator("#chart-heatmap")).to_have_attribute("data-rendered", "1")
    z = page.evaluate("document.getElementById('chart-heatmap').data[0].z")
    assert len(z) == 2 and len(z[0]) == 3
    best = optimization.best_params
    expect(page.locator("#best-params")).to_contain_text(f"fast={best['fast']}")
    assert page.console_errors == []


def test_walk_forward_page_puts_out_of_sample_next_to_in_sample(page, celery_worker, trader):
    log_in(page, trader)
    page.goto("/backtests/")
    page.click(".subnav >> text=Optimizations")
    page.click("text=New walk-forward")
    expect(page.locator("select[name=kind]")).to_have_value("walk_forward")
    expect(page.locator("input[name=windows]")).to_be_visible()
    page.select_option("select[name=strategy]", "builtin:sma_crossover")
    page.fill(f"input[name=s__{SMA_SLUG}__fast]", "5,10")
    page.fill(f"input[name=s__{SMA_SLUG}__slow]", "30,50")
    page.fill("input[name=windows]", "3")
    fill_market(page)
    page.click("#optimization-form button[type=submit]")

    expect(page).to_have_url(re.compile(r"/backtests/optimizations/\d+/$"))
    expect(page.locator("body")).to_have_attribute("data-results-ready", "1", timeout=RUN_TIMEOUT)
    optimization = Optimization.objects.get(owner=trader)
    assert optimization.kind == "walk_forward" and optimization.status == JobStatus.COMPLETED
    expect(page.locator("#wf-table tbody tr")).to_have_count(3)
    expect(page.locator("#chart-walk-forward")).to_have_attribute("data-rendered", "1")
    names = page.evaluate("document.getElementById('chart-walk-forward').data.map(t => t.name)")
    assert names == ["In-sample", "Out-of-sample"]
    expect(page.locator('#wf-summary [data-metric="efficiency"]')).to_be_visible()
    # In-sample trials per window.
    page.select_option("#trial-window", "1")
    expect(page.locator("#trials-page")).to_contain_text("4 trials")
    # Each in-sample trial offers a bot with its parameters, from its own window.
    start_bot = page.locator("#trials-table tbody tr a.start-bot").first
    expect(start_bot).to_have_attribute(
        "href", re.compile(r"/bots/new/\?optimization=\d+&trial=\d+&window=1$")
    )
    assert page.console_errors == []


def test_progress_bar_follows_live_events_then_the_worker_finishes_the_run(page, celery_worker, trader):
    """The bar moves on ``backtest.progress`` events over the real WebSocket, not only by polling.

    Real runs on this data finish in well under a second, before the page's socket is up; so the run
    is created without enqueueing, the page opens on it (pending), a progress event is published on
    the real channel layer exactly as the worker publishes it, and only then is the run handed to
    the real worker.
    """
    from apps.backtests.services import backtest_create
    from apps.backtests.tasks import backtest_execute_task
    from tests.backtests.api_support import SMA_BODY

    run = backtest_create(user=trader, data=dict(SMA_BODY), enqueue=False)
    log_in(page, trader)
    page.goto(f"/backtests/{run.pk}/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on", timeout=15000)
    bar = page.locator("#run-progress")
    expect(bar).to_have_attribute("aria-valuenow", "0")

    publish_event(
        trader.id,
        "backtest.progress",
        {"id": run.pk, "status": "running", "progress": 42, "stage": "running"},
    )
    expect(bar).to_have_attribute("aria-valuenow", "42", timeout=15000)
    expect(page.locator("#run-progress-pct")).to_have_text("42%")
    expect(page.locator("#run-status .badge")).to_have_text("running")
    # Events for another run leave this bar alone.
    publish_event(trader.id, "backtest.progress", {"id": run.pk + 1000, "status": "running", "progress": 77})

    backtest_execute_task.apply_async(args=[run.pk])
    expect(page.locator("body")).to_have_attribute("data-results-ready", "1", timeout=RUN_TIMEOUT)
    trail = bar.get_attribute("data-trail").split(",")
    assert trail[0] == "0" and "42" in trail and trail[-1] == "100" and "77" not in trail
    expect(page.locator("#progress-card")).to_be_hidden()
    assert page.console_errors == []


def test_cancel_a_pending_run_from_its_page(page, trader):
    from apps.backtests.services import backtest_create
    from tests.backtests.api_support import SMA_BODY

    run = backtest_create(user=trader, data=dict(SMA_BODY), enqueue=False)
    log_in(page, trader)
    page.goto(f"/backtests/{run.pk}/")
    expect(page.locator("#cancel-button")).to_be_visible()
    expect(page.locator("#export-link")).to_be_hidden()
    page.click("#cancel-button")
    expect(page.locator("#run-status .badge")).to_have_text("cancelled", timeout=10000)
    expect(page.locator("#error-card")).to_contain_text("cancelled")
    expect(page.locator("#cancel-button")).to_be_hidden()
    expect(page.locator("#progress-card")).to_be_hidden()
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    assert page.console_errors == []


def test_a_run_without_trades_says_why_and_never_wins_a_comparison(page, trader):
    from apps.backtests.services import backtest_create, backtest_execute
    from tests.backtests.api_support import SMA_BODY

    ids = []
    # Two runs that trade, and one whose slow window (200 hours) never fits into the three
    # days it is given.
    for body in (
        dict(SMA_BODY),
        {**SMA_BODY, "params": {"fast": 5, "slow": 20}},
        {**SMA_BODY, "params": {"fast": 50, "slow": 200}, "start": "2024-01-01", "end": "2024-01-04"},
    ):
        run = backtest_create(user=trader, data=body, enqueue=False)
        assert backtest_execute(run_id=run.pk) == JobStatus.COMPLETED
        ids.append(run.pk)
    runs = [BacktestRun.objects.get(pk=pk) for pk in ids]
    assert runs[0].total_trades and runs[1].total_trades and not runs[2].total_trades
    idle = runs[2]

    log_in(page, trader)
    page.goto(f"/backtests/{idle.pk}/")
    expect(page.locator("body")).to_have_attribute("data-results-ready", "1", timeout=RUN_TIMEOUT)
    expect(page.locator("#no-trades-card")).to_be_visible()
    expect(page.locator("#no-trades-reason")).to_contain_text("no entry signal in the 72 candles")
    page.goto(f"/backtests/{runs[0].pk}/")
    expect(page.locator("body")).to_have_attribute("data-results-ready", "1", timeout=RUN_TIMEOUT)
    expect(page.locator("#no-trades-card")).to_be_hidden()

    page.goto("/backtests/compare/?ids=" + ",".join(map(str, ids)))
    expect(page.locator("#chart-compare")).to_have_attribute("data-rendered", "1", timeout=15000)
    # The idle run has no drawdown at all, yet the star goes to the better of the runs that traded.
    drawdown = page.locator('#compare-table tr[data-metric="max_drawdown"] td')
    best = 0 if abs(runs[0].max_drawdown) < abs(runs[1].max_drawdown) else 1
    expect(drawdown.nth(best)).to_contain_text("★")
    expect(drawdown.nth(2)).not_to_contain_text("★")
    expect(page.locator("#compare-table thead th").nth(3)).to_contain_text("no trades")
    assert page.console_errors == []
