"""Download jobs on a real Celery worker (Redis, PostgreSQL) against the fake Binance server:
cancelled from the API while running, and failed by the reaper when their worker is killed and
automatic re-runs are off (a re-run completing on a real worker: tests/backtests/test_tasks_worker.py)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from apps.core.jobs import JobStatus, jobs_reap_stale
from apps.marketdata.jobs import job_create
from apps.marketdata.models import Candle, ImportJob
from apps.marketdata.tasks import run_job
from tests.support import servers
from tests.support.fake_exchange import FakeBinance

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SLOW_PAGE_SECONDS = 1.5


def wait_for(predicate, timeout=60.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def slow_binance(shared_data_dir, monkeypatch):
    """The fake Binance with three days of real 1m candles, each klines page answered slowly."""
    df = pd.read_csv(shared_data_dir / "ohlcv" / "binance_BTCUSDT_1m.csv.gz")
    lo = int(datetime(2025, 6, 2, tzinfo=UTC).timestamp() * 1000)
    hi = int(datetime(2025, 6, 5, tzinfo=UTC).timestamp() * 1000)
    with FakeBinance() as fake:
        fake.set_klines("BTCUSDT", "1m", df[(df.timestamp >= lo) & (df.timestamp < hi)].to_numpy().tolist())
        fast = fake._klines

        def slow(request):
            time.sleep(SLOW_PAGE_SECONDS)
            return fast(request)

        fake.route("GET", "/api/v3/klines", slow)
        # The worker process reads these from its environment (tests.support.servers.child_env).
        monkeypatch.setenv("MARKETDATA_ONLINE", "true")
        monkeypatch.setenv("MARKETDATA_API_OVERRIDES", json.dumps(fake.overrides()))
        yield fake


@pytest.fixture
def own_worker(celery_worker, tmp_path):
    """A worker on a queue of its own (started after ``slow_binance`` set its environment)."""
    queue = f"marketdata-{uuid.uuid4().hex[:8]}"
    with servers.celery_worker(
        concurrency=1, hostname="marketdata", queues=queue, log_path=tmp_path / "worker.log"
    ) as process:
        process.queue = queue
        yield process


def download_job(user) -> ImportJob:
    return job_create(
        user=user, kind="download", exchange="binance", symbol="BTC/USDT", timeframe="1m",
        params={"start": "2025-06-02T00:00:00+00:00", "end": "2025-06-05T00:00:00+00:00"}, enqueue=False,
    )  # fmt: skip


def test_a_running_download_is_cancelled_from_the_api(slow_binance, own_worker, user, auth_client):
    job = download_job(user)
    run_job.apply_async(args=[job.id], queue=own_worker.queue)
    assert wait_for(lambda: ImportJob.objects.filter(id=job.id, status="running", progress__gt=0).exists())
    asked = time.monotonic()
    response = auth_client.post(f"/api/v1/market-data/jobs/{job.id}/cancel/")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    assert wait_for(lambda: ImportJob.objects.get(id=job.id).status == JobStatus.CANCELLED, timeout=15)
    assert time.monotonic() - asked < SLOW_PAGE_SECONDS * 3  # stopped at its next page
    job.refresh_from_db()
    assert job.progress < 100 and job.finished_at is not None
    # what came before the cancel stays stored (each page commits): a rerun resumes after it
    assert 0 < Candle.objects.filter(market__symbol="BTC/USDT", timeframe="1m").count() < 3 * 1440


def test_killed_worker_leaves_the_download_failed_when_automatic_runs_are_off(
    slow_binance, own_worker, user, auth_client, settings
):
    settings.JOB_AUTO_RETRIES = 0
    job = download_job(user)
    run_job.apply_async(args=[job.id], queue=own_worker.queue)
    assert wait_for(lambda: ImportJob.objects.filter(id=job.id, status="running", progress__gt=0).exists())
    # Alive and beating: the reaper leaves it alone.
    assert jobs_reap_stale(stale_after=timedelta(seconds=15), job_classes=[ImportJob]) == {}
    os.kill(own_worker.pid, signal.SIGKILL)
    own_worker.wait(timeout=10)
    assert ImportJob.objects.get(id=job.id).status == JobStatus.RUNNING
    time.sleep(3.5)
    assert jobs_reap_stale(stale_after=timedelta(seconds=3), job_classes=[ImportJob]) == {
        "marketdata.ImportJob": [job.id]
    }
    body = auth_client.get(f"/api/v1/market-data/jobs/{job.id}/").json()
    assert body["status"] == "failed" and body["error"]["code"] == "worker_lost"
    assert "stopped responding" in body["error"]["message"]
