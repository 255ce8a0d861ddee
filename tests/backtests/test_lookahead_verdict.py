"""Every run started from the API or a page gets the lookahead check; its verdict is on the run page and in the API."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from apps.backtests.models import BacktestRun
from apps.backtests.services import backtest_execute, strategy_create
from apps.core.jobs import JobStatus
from tests.backtests.api_support import SMA_BODY, import_candles

pytestmark = pytest.mark.django_db

# Line 8 reads tomorrow's close: the classic one-candle peek.
CHEATING_CODE = """import pandas as pd


class Peek(SignalStrategy):
    name = "peek"
    def signals(self, data):
        close = pd.Series(data.close)
        tomorrow = close.shift(-1)
        sma = close.rolling(10).mean()
        return Signals(long_entries=(tomorrow > sma).to_numpy(), long_exits=(tomorrow < sma).to_numpy())
"""


@pytest.fixture
def candles_1h(shared_data_dir):
    import_candles(shared_data_dir, "1h")


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def start_run(api_client, body) -> BacktestRun:
    """POST the run like a user does, then execute it as the worker would."""
    response = api_client.post(reverse("backtests-api:run-list"), body, format="json")
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    assert backtest_execute(run_id=run_id) == JobStatus.COMPLETED
    return BacktestRun.objects.get(id=run_id)


def test_a_cheating_user_strategy_run_shows_the_verdict_with_its_line(
    api_client, logged_in, user, candles_1h, settings
):
    settings.BACKTEST_LOOKAHEAD_SECONDS = 15
    api_client.force_authenticate(user)
    strategy = strategy_create(user=user, source=CHEATING_CODE)
    run = start_run(api_client, {**SMA_BODY, "strategy": None, "strategy_id": strategy.id, "params": {}})
    assert run.lookahead_verdict == "lookahead_detected" and run.lookahead["line"] == 8
    detail = api_client.get(reverse("backtests-api:run-detail", args=[run.id])).json()
    assert detail["lookahead"]["verdict"] == "lookahead_detected"
    assert detail["lookahead"]["line"] == 8 and "line 8" in detail["lookahead"]["summary"]
    assert detail["lookahead"]["total_changes"] > 0 and detail["lookahead"]["changes"]
    html = logged_in.get(reverse("backtests:detail", args=[run.id])).content.decode()
    assert 'data-verdict="lookahead_detected"' in html and "Lookahead detected" in html
    assert '<strong id="lookahead-line">Line 8</strong>' in html


def test_an_honest_run_shows_ok(api_client, logged_in, user, candles_1h):
    api_client.force_authenticate(user)
    run = start_run(api_client, dict(SMA_BODY))
    assert run.lookahead_verdict == "ok" and run.lookahead["line"] is None
    assert run.lookahead["decisions_checked"] > 0
    detail = api_client.get(reverse("backtests-api:run-detail", args=[run.id])).json()
    assert (
        detail["lookahead"]["verdict"] == "ok" and "no lookahead bias found" in detail["lookahead"]["summary"]
    )
    html = logged_in.get(reverse("backtests:detail", args=[run.id])).content.decode()
    assert 'data-verdict="ok"' in html and '<span class="badge ok">OK</span>' in html


def test_a_run_started_from_the_page_is_checked_too(logged_in, user, candles_1h):
    from tests.backtests.test_dashboard import _form_data

    response = logged_in.post(reverse("backtests:new"), _form_data())
    assert response.status_code == 302, response.content.decode()[:2000]
    run = BacktestRun.objects.get(owner=user)
    assert backtest_execute(run_id=run.id) == JobStatus.COMPLETED
    run.refresh_from_db()
    assert run.lookahead_verdict == "ok"


def test_the_check_is_bounded_in_time_and_says_what_it_covered(user, candles_1h, settings):
    from apps.backtests.services import backtest_create

    settings.BACKTEST_LOOKAHEAD_SECONDS = 0.001
    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    assert backtest_execute(run_id=run.id) == JobStatus.COMPLETED
    run.refresh_from_db()
    assert run.lookahead_verdict == "ok" and run.lookahead["complete"] is False
    assert "time limit" in run.lookahead["summary"]


def test_a_check_that_cannot_run_is_not_checked_and_the_run_still_completes(user, candles_1h, monkeypatch):
    from apps.backtests.engine.errors import StrategyError
    from apps.backtests.services import backtest_create, lookahead

    def refuse(**kwargs):
        raise StrategyError("the strategy failed on truncated data")

    monkeypatch.setattr(lookahead, "strategy_check_lookahead", refuse)
    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    assert backtest_execute(run_id=run.id) == JobStatus.COMPLETED
    run.refresh_from_db()
    assert run.lookahead_verdict == "not_checked" and "truncated data" in run.lookahead["summary"]


def test_an_optimization_checks_its_best_parameters(
    auth_client, user, logged_in, candles_1h, django_capture_on_commit_callbacks
):
    from tests.backtests.test_optimization import create, run_all

    body = {
        **SMA_BODY,
        "params": {},
        "kind": "grid",
        "space": {"fast": [5, 10], "slow": [30]},
        "chunk_size": 2,
    }
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        opt = run_all(create(auth_client, body, django_capture_on_commit_callbacks))
    # The sweep's results are final at once; the check of its best parameters follows as a task.
    assert opt.status == JobStatus.COMPLETED and opt.best_params
    assert opt.lookahead_verdict == "pending"
    assert auth_client.get(f"/api/v1/backtests/optimizations/{opt.id}/").json()["lookahead"]["verdict"] == (
        "pending"
    )
    html = logged_in.get(reverse("backtests:optimization", args=[opt.id])).content.decode()
    assert 'id="lookahead-card" data-verdict="pending"' in html and "Checking…" in html
    # The check's task is sent after the sweep's commit (the other callback: the create's start).
    assert any("_finalize" in c.__qualname__ for c in callbacks)
    from apps.backtests.optimization import optimization_check_lookahead

    optimization_check_lookahead(optimization_id=opt.id)
    opt.refresh_from_db()
    assert opt.lookahead_verdict == "ok" and opt.lookahead["decisions_checked"] > 0
    # A redelivered task finds it done.
    assert optimization_check_lookahead(optimization_id=opt.id) == opt.lookahead
    detail = auth_client.get(f"/api/v1/backtests/optimizations/{opt.id}/").json()
    assert detail["lookahead"]["verdict"] == "ok"
    html = logged_in.get(reverse("backtests:optimization", args=[opt.id])).content.decode()
    assert 'id="lookahead-card" data-verdict="ok"' in html


def test_a_run_s_check_keeps_the_job_s_heartbeat_and_stops_on_cancel(user, candles_1h, settings, monkeypatch):
    """The check after the backtest can run for BACKTEST_LOOKAHEAD_SECONDS: the job's monitor
    polls (and so beats) through it, so the reaper never takes it for a lost worker."""
    from apps.backtests.services import backtest_create
    from apps.backtests.strategies import lookahead as check
    from apps.core.jobs import JobMonitor

    settings.BACKTEST_LOOKAHEAD_SECONDS = 30
    monkeypatch.setattr(JobMonitor, "HEARTBEAT_EVERY", 0.05)
    monkeypatch.setattr(JobMonitor, "CANCEL_POLL", 0.05)
    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    beats = []
    signal_arrays = check._signal_arrays

    def slow_cut(strategy, candles):  # only the lookahead check calls it (the backtest runs the engine)
        beats.append(BacktestRun.objects.values_list("heartbeat_at", flat=True).get(pk=run.pk))
        if len(beats) == 8:
            BacktestRun.objects.filter(pk=run.pk).update(cancel_requested=True)
        time.sleep(0.03)
        return signal_arrays(strategy, candles)

    monkeypatch.setattr(check, "_signal_arrays", slow_cut)
    assert backtest_execute(run_id=run.id) == JobStatus.CANCELLED, beats
    assert len(set(beats[:8])) >= 3, beats  # the heartbeat moved while the check ran
    assert len(beats) < 8 + 6  # and the cancel stopped it within a few cuts
