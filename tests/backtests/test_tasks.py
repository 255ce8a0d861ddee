"""Run execution rules, in-process (the worker-process paths are in test_tasks_worker.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.backtests.models import BacktestResultData, BacktestRun, Optimization
from apps.backtests.services import backtest_create, backtest_execute, strategy_create
from apps.core.jobs import JobStatus, job_models, jobs_reap_stale
from apps.core.schedules import declared_schedules
from tests.backtests.api_support import SMA_BODY, import_candles

pytestmark = pytest.mark.django_db

SLOW_CODE = """
class Slow(Strategy):
    name = "slow"
    params = {"work": Param("int", 20000, min=1, max=10000000)}

    def on_data(self, candle):
        total = 0
        for i in range(self.p.work):
            total += i
"""


@pytest.fixture
def candles_1h(shared_data_dir):
    import_candles(shared_data_dir, "1h")


def test_a_run_past_the_time_limit_fails_with_a_timeout(user, candles_1h, settings):
    settings.BACKTEST_TIME_LIMIT_SECONDS = 1
    strategy = strategy_create(user=user, source=SLOW_CODE)
    run = backtest_create(
        user=user,
        data={**SMA_BODY, "strategy": None, "strategy_id": strategy.id, "params": {}},
        enqueue=False,
    )
    started = timezone.now()
    assert backtest_execute(run_id=run.id) == JobStatus.FAILED
    run.refresh_from_db()
    assert run.error_code == "timeout" and "time limit of 1 s" in run.error
    assert (timezone.now() - started).total_seconds() < 10


def test_a_run_executes_once_even_if_the_task_is_delivered_twice(user, candles_1h):
    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    assert backtest_execute(run_id=run.id) == JobStatus.COMPLETED
    assert backtest_execute(run_id=run.id) is None
    assert BacktestResultData.objects.filter(run=run).count() == 1


def test_reaper_fails_only_runs_with_a_stale_heartbeat(user, candles_1h):
    fresh = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    stale = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    now = timezone.now()
    BacktestRun.objects.filter(id=fresh.id).update(status=JobStatus.RUNNING, heartbeat_at=now)
    BacktestRun.objects.filter(id=stale.id).update(
        status=JobStatus.RUNNING, heartbeat_at=now - timedelta(minutes=5)
    )
    assert jobs_reap_stale()["backtests.BacktestRun"] == [stale.id]
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == JobStatus.FAILED and stale.error_code == "worker_lost" and stale.finished_at
    assert fresh.status == JobStatus.RUNNING
    # A worker that was only slow, not dead, cannot overwrite the verdict afterwards.
    assert backtest_execute(run_id=stale.id) is None


def test_a_stale_attempt_of_a_run_sent_again_stores_nothing(user, candles_1h, monkeypatch, settings):
    """Attempt 1's worker was only slow: the run was sent again and attempt 2 took it meanwhile.
    Attempt 1 then reaches its end: it stores no result and does not finish attempt 2."""
    from apps.backtests.services import runs
    from apps.backtests.services.enqueue import RUN_TASK

    settings.JOB_AUTO_RETRIES = 2
    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    BacktestRun.objects.filter(id=run.id).update(task_name=RUN_TASK)
    original = runs.backtest_result_save

    def lost_then_save(run_obj, candles, result):
        BacktestRun.objects.filter(id=run_obj.id).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
        jobs_reap_stale(job_classes=[BacktestRun])  # the re-send waits for this test's commit: never sent
        assert BacktestRun.objects.claim(run_obj.id, worker="other@host", attempt=2)
        return original(run_obj, candles, result)

    monkeypatch.setattr(runs, "backtest_result_save", lost_then_save)
    assert backtest_execute(run_id=run.id) is None
    assert not BacktestResultData.objects.exists()
    run.refresh_from_db()
    assert (run.status, run.attempt, run.worker) == (JobStatus.RUNNING, 2, "other@host")
    # The old task delivered once more finds nothing to run.
    assert backtest_execute(run_id=run.id, attempt=1) is None


def test_the_one_core_reaper_covers_runs_and_optimizations():
    assert {BacktestRun, Optimization} <= set(job_models())
    assert not [
        s for s in declared_schedules() if "reap" in s.task and s.task != "apps.core.tasks.reap_stale_jobs"
    ]


def test_deleting_a_run_while_it_runs_discards_its_result(user, candles_1h, monkeypatch):
    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    from apps.backtests.services import runs

    original = runs.backtest_result_save

    def delete_then_save(run_obj, candles, result):
        BacktestRun.objects.filter(id=run_obj.id).delete()
        return original(run_obj, candles, result)

    monkeypatch.setattr(runs, "backtest_result_save", delete_then_save)
    assert backtest_execute(run_id=run.id) is None
    assert not BacktestResultData.objects.exists()


def test_no_candles_in_range_is_a_readable_failure(user, candles_1h):
    from apps.marketdata.models import Candle

    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    Candle.objects.all().delete()
    assert backtest_execute(run_id=run.id) == JobStatus.FAILED
    run.refresh_from_db()
    assert run.error_code in ("no_candles", "backtest_error") and run.error
