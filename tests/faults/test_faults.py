"""Faults on real processes: PostgreSQL and Redis stopped and started again, a worker SIGKILLed.

Everything runs on private servers (``tests/faults/conftest.py``) with a real Celery worker,
beat and daphne on them, while paper bots tick on the 1m replay feed (a candle a second), a
file import and a backtest run. Afterwards the platform continues by itself: bots tick again
and stay running, every job the fault hit is run again by itself and ends completed (never left
running, never run twice at once), no client order id reaches the paper exchange twice, every
fill the exchange made is recorded, and ``/health/ready/`` names what was down while it was down.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

import pytest
from django.db import connections
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from apps.backtests.models import BacktestResultData, BacktestRun
from apps.bots.models import Bot
from apps.marketdata.models import ImportJob
from tests.backtests.api_support import import_candles, wait_for
from tests.faults import support
from tests.support.api import assert_error
from tests.support.servers import children_of

pytestmark = [pytest.mark.worker, pytest.mark.slow]

OUTAGE_SECONDS = 4


def down(body: dict) -> set[str]:
    return {name for name, check in body["checks"].items() if not check["ok"]}


def ready(api: support.Api) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = api.get("/health/ready/")
    return response.status_code, response.json(), time.monotonic() - started


def assert_bots_recovered(bots, before) -> None:
    """The bots tick again by themselves (beat -> worker) and are still running, not in error."""
    wait_for(lambda: support.all_ticked_since(bots, before), timeout=60)
    assert set(Bot.objects.filter(pk__in=[b.pk for b in bots]).values_list("status", flat=True)) == {
        "running"
    }


def assert_jobs_completed(jobs, timeout: float = 60) -> dict[tuple[str, int], int]:
    """Each job ends completed by itself (a job the fault hit is sent again under its next attempt);
    returns the attempts it took, by (model name, pk)."""
    wait_for(lambda: all(support.finished(model, pk) for model, pk in jobs), timeout=timeout)
    attempts = {}
    for model, pk in jobs:
        status, _progress, code = support.job_state(model, pk)
        assert (status, code) == ("completed", ""), (model.__name__, status, code)
        attempts[(model.__name__, pk)] = model.objects.get(pk=pk).attempt
    # Run once to its end: one stored result, whatever the attempts.
    assert BacktestResultData.objects.filter(
        run_id__in=[pk for model, pk in jobs if model is BacktestRun]
    ).count() == (sum(1 for model, _pk in jobs if model is BacktestRun))
    return attempts


def assert_orders_intact(bots) -> None:
    assert support.orders_placed(bots) > 0
    assert support.duplicate_client_order_ids(bots) == []
    # The order sync (beat) records every fill the exchange made, the outage's included.
    wait_for(lambda: support.unrecorded_fills(bots) == {}, timeout=30)


@pytest.fixture
def trading(fault_stack, shared_data_dir):
    """A user with running paper bots that have ticked at least once, and a JWT API client."""
    support.store_replay_candles(shared_data_dir)
    user = support.new_user()
    bots = support.trading_bots(user)
    wait_for(lambda: all(v is not None for v in support.ticks(bots).values()), timeout=60)
    return user, bots, support.Api(fault_stack.base_url, user)


def test_readiness_names_what_is_down_with_the_reason_and_recovers_by_itself(fault_stack):
    api = support.Api(fault_stack.base_url, support.new_user())
    status, body, _ = ready(api)
    assert (status, body["status"], down(body)) == (200, "ok", set()), body
    assert set(body["checks"]) == {"database", "redis", "channel_layer", "celery"}

    fault_stack.postgres.stop()
    status, body, took = ready(api)
    assert (status, body["status"], down(body)) == (503, "error", {"database"}), body
    assert body["checks"]["database"]["error"]  # the reason, e.g. the refused connection
    assert took < 6  # the check's deadline (3 s), not the pool's wait for a connection
    fault_stack.postgres.start()
    wait_for(lambda: ready(api)[0] == 200, timeout=20)

    fault_stack.redis.stop()
    status, body, took = ready(api)
    assert (status, body["status"]) == (503, "error"), body
    assert down(body) == {"redis", "channel_layer", "celery"}, body
    assert "onnect" in body["checks"]["redis"]["error"]  # ConnectionError: ... refused
    assert took < 6
    fault_stack.redis.start()
    # The worker reconnects to the broker by itself, the web process to the layer and cache.
    wait_for(lambda: ready(api)[0] == 200, timeout=30)


def test_a_postgresql_restart_mid_ticks_import_and_backtest_recovers_without_duplicates_or_lost_fills(
    fault_stack, trading, shared_data_dir, tmp_path
):
    user, bots, api = trading
    run_id = support.start_backtest(api, shared_data_dir)
    job_id = support.start_import(user, shared_data_dir, tmp_path)
    wait_for(
        lambda: BacktestRun.objects.filter(pk=run_id, status="running", progress__gt=0).exists(), timeout=60
    )
    wait_for(lambda: ImportJob.objects.filter(pk=job_id, status="running").exists(), timeout=60)
    before = support.ticks(bots)

    fault_stack.postgres.stop()
    time.sleep(OUTAGE_SECONDS)
    # The web process answers while the database is away (liveness), says it is not ready, and
    # API requests get a 503 with the error body once the pool gives up (DATABASE_POOL_TIMEOUT 5 s).
    assert api.get("/health/").status_code == 200
    assert ready(api)[0] == 503
    started = time.monotonic()
    assert "database" in assert_error(api.get("/api/v1/bots/"), 503, "service_unavailable")["message"].lower()
    assert time.monotonic() - started < 12
    fault_stack.postgres.start()
    connections.close_all()  # this test process's own connection died with the server

    assert_bots_recovered(bots, before)
    # A job hit mid-way records the lost connection once the database is back, goes back to
    # pending and is sent again (or, if it could not record it, the reaper re-sends it): completed.
    attempts = assert_jobs_completed([(ImportJob, job_id), (BacktestRun, run_id)], timeout=150)
    status = api.get(f"/api/v1/backtests/{run_id}/status/")
    assert status.status_code == 200 and status.json()["attempt"] == attempts[("BacktestRun", run_id)]
    assert max(attempts.values()) >= 2, attempts  # the outage hit at least one of them
    assert ready(api)[0] == 200
    assert_orders_intact(bots)


def test_a_redis_restart_loses_no_order_and_workers_beat_web_and_websockets_carry_on(
    fault_stack, trading, shared_data_dir
):
    _user, bots, api = trading
    # Candles for the backtest that is refused below: valid, so only the job queue refuses it.
    import_candles(shared_data_dir, "1h")
    ws_url = fault_stack.base_url.replace("http://", "ws://") + f"/ws/events/?token={api.token}"

    def heartbeat_arrives(timeout: float = 20) -> bool:
        """A fresh WebSocket client gets beat's heartbeat: beat -> Redis -> worker -> layer -> daphne.
        A refused or dropped connection is False: the browser's socket reconnects the same way."""
        try:
            with connect(ws_url, origin=fault_stack.base_url, open_timeout=10) as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "connected"
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if json.loads(ws.recv(timeout=timeout))["type"] == "heartbeat":
                        return True
        except (OSError, TimeoutError, WebSocketException):
            pass
        return False

    assert heartbeat_arrives()
    before = support.ticks(bots)
    fault_stack.redis.stop()
    time.sleep(OUTAGE_SECONDS)
    # The web process still answers: liveness, and reads that need only the database.
    assert api.get("/health/").status_code == 200
    assert ready(api)[0] == 503
    assert api.get("/api/v1/bots/").status_code == 200
    # A job cannot be queued: 503 with the error body, not Django's HTML 500.
    refused = api.post("/api/v1/backtests/", support.SMA_BODY)
    assert "job queue" in assert_error(refused, 503, "service_unavailable")["message"]
    # ...and its row is not left pending forever with no task behind it: failed, saying why.
    assert list(BacktestRun.objects.filter(owner=_user).values_list("status", "error_code")) == [
        ("failed", "queue_unavailable")
    ]
    fault_stack.redis.start()

    wait_for(lambda: fault_stack.worker_answers("worker"), timeout=30)
    assert_bots_recovered(bots, before)
    wait_for(heartbeat_arrives, timeout=60)  # WebSocket clients reconnect and hear the live path again
    wait_for(lambda: ready(api)[0] == 200, timeout=30)
    assert_orders_intact(bots)


def test_a_worker_killed_mid_tick_import_and_backtest_has_another_worker_run_them_to_the_end(
    fault_stack, trading, shared_data_dir, tmp_path
):
    user, bots, api = trading
    # Only the doomed worker consumes while the jobs start, so they run on it.
    doomed = fault_stack.start_worker("doomed")
    wait_for(lambda: fault_stack.worker_answers("doomed"), timeout=60)
    fault_stack.stop("worker")
    # A slower run than the PostgreSQL test's: the kill lands after the waits below (a few seconds,
    # up to the 15 s for a tick's lease), and the run must still be going then.
    run_id = support.start_backtest(api, shared_data_dir, work=15000)
    job_id = support.start_import(user, shared_data_dir, tmp_path)
    wait_for(
        lambda: BacktestRun.objects.filter(pk=run_id, status="running", progress__gt=0).exists(), timeout=60
    )
    wait_for(lambda: ImportJob.objects.filter(pk=job_id, status="running").exists(), timeout=60)
    before = support.ticks(bots)
    # Mid-tick: the kill lands while a bot holds a tick's lease, if the timing allows (the exact
    # order-written-but-tick-unrecorded crash is tests/bots/test_crash.py).
    wait_for(lambda: Bot.objects.filter(pk__in=[b.pk for b in bots], tick_lease_until__isnull=False).exists(),
             timeout=15, interval=0.01)  # fmt: skip
    sandboxes = children_of(doomed.pid)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)
    fault_stack.processes.pop("doomed")
    for pid in sandboxes:  # the machine "died": its sandbox children too
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert set(BacktestRun.objects.filter(pk=run_id).values_list("status", flat=True)) == {"running"}
    # The import may have finished on the doomed worker before the kill (it is the faster job).
    import_lost = ImportJob.objects.filter(pk=job_id, status="running").exists()

    fault_stack.start_worker("worker")  # another worker
    wait_for(lambda: fault_stack.worker_answers("worker"), timeout=60)
    # A tick the dead worker held is ticked again after its lease (BOT_TICK_LEASE_SECONDS).
    assert_bots_recovered(bots, before)
    # Its jobs are sent again by the reaper (beat, every JOBS_REAP_SECONDS) once their heartbeat is stale, and
    # the other worker runs them to the end.
    attempts = assert_jobs_completed([(ImportJob, job_id), (BacktestRun, run_id)], timeout=180)
    assert attempts == {("ImportJob", job_id): 2 if import_lost else 1, ("BacktestRun", run_id): 2}
    body = api.get(f"/api/v1/backtests/{run_id}/status/").json()
    assert (body["status"], body["attempt"], body["error"]) == ("completed", 2, None)
    assert_orders_intact(bots)
