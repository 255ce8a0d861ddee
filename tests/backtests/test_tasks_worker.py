"""Runs on a real Celery worker (Redis broker, test PostgreSQL), events on a real WebSocket.

* a run submitted through the API is executed by the worker, its progress and
  status events reach a WebSocket client of the running ASGI server, and its
  results equal the engine called directly;
* cancel stops a running run within 2 s;
* a user-code error is recorded with its line number;
* a worker killed mid-run is taken for lost by the heartbeat reaper, and the run is sent again
  (its next attempt) and completed by another worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import websockets
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from apps.backtests.engine import BacktestConfig, run_backtest
from apps.backtests.models import BacktestResultData, BacktestRun
from apps.backtests.services import backtest_create, load_candles
from apps.backtests.services.enqueue import RUN_TASK
from apps.backtests.strategies.registry import build_strategy
from apps.core.jobs import JobStatus, job_send, jobs_reap_stale
from tests.backtests.api_support import SMA_BODY, import_candles, post_in_thread, wait_for
from tests.factories import UserFactory
from tests.support import aio, servers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

URL = "/api/v1/backtests/"

# Deliberately slow user code (a pure-Python loop per candle) so there is time to act mid-run.
SLOW_CODE = """
class Slow(Strategy):
    name = "slow"
    params = {"work": Param("int", 3000, min=1, max=10000000)}

    def on_data(self, candle):
        total = 0
        for i in range(self.p.work):
            total += i
        if self.get_position_size() == 0 and total >= 0:
            self.buy(None)
"""


def ws_url(live_server_url: str, token: str) -> str:
    return live_server_url.replace("http://", "ws://") + f"/ws/events/?token={token}"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def trader(shared_data_dir):
    import_candles(shared_data_dir, "1h")
    return UserFactory()


def test_api_run_on_real_worker_streams_progress_to_websocket_and_matches_engine(
    celery_worker, live_server_url, trader
):
    client = client_for(trader)
    token = str(AccessToken.for_user(trader))
    events: list[dict] = []

    async def scenario() -> int:
        async with websockets.connect(ws_url(live_server_url, token), origin="http://127.0.0.1") as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            response = await asyncio.to_thread(post_in_thread, client, URL, SMA_BODY)
            assert response.status_code == 202, response.json()
            run_id = response.json()["id"]

            async def until_finished():
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"].startswith("backtest.") and event["payload"]["id"] == run_id:
                        events.append(event)
                        if event["type"] == "backtest.status" and event["payload"]["status"] in (
                            "completed",
                            "failed",
                            "cancelled",
                        ):
                            return

            await asyncio.wait_for(until_finished(), 60)
            return run_id

    run_id = aio.run(scenario())
    types = [(e["type"], e["payload"].get("status")) for e in events]
    assert ("backtest.status", "running") in types
    assert any(t == "backtest.progress" for t, _ in types)
    assert types[-1] == ("backtest.status", "completed")
    progress = [e["payload"]["progress"] for e in events if e["type"] == "backtest.progress"]
    assert progress == sorted(progress) and all(0 <= p <= 100 for p in progress)
    final = events[-1]["payload"]
    assert final["headline"]["total_trades"] > 0

    run = BacktestRun.objects.get(id=run_id)
    assert run.worker.startswith("test-worker") and run.status == JobStatus.COMPLETED
    candles = load_candles(
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 7, 1, tzinfo=UTC),
    )
    direct = run_backtest(
        candles,
        build_strategy("sma_crossover", {"fast": 10, "slow": 30}),
        BacktestConfig(initial_cash=10000, fee=0.001),
    )
    results = client.get(f"{URL}{run_id}/results/").json()
    for key, value in direct.metrics.items():
        assert results["metrics"][key] == (
            pytest.approx(value, rel=1e-12, abs=1e-12) if value is not None else None
        )
    assert final["headline"]["total_return"] == pytest.approx(direct.metrics["total_return"], rel=1e-12)


def test_cancel_stops_a_running_run_within_two_seconds(celery_worker, trader):
    client = client_for(trader)
    created = client.post(f"{URL}strategies/", {"source": SLOW_CODE}, format="json")
    assert created.status_code == 201, created.json()
    body = {**SMA_BODY, "strategy": None, "strategy_id": created.json()["id"], "params": {"work": 20000}}
    body["start"], body["end"] = "2023-01-01T00:00:00Z", "2025-01-01T00:00:00Z"
    run_id = client.post(URL, body, format="json").json()["id"]
    wait_for(lambda: BacktestRun.objects.filter(id=run_id, progress__gte=7).exists(), timeout=60)
    asked = time.monotonic()
    response = client.post(f"{URL}{run_id}/cancel/")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    wait_for(
        lambda: BacktestRun.objects.get(id=run_id).status == JobStatus.CANCELLED, timeout=10, interval=0.05
    )
    assert time.monotonic() - asked < 2.0
    assert BacktestRun.objects.get(id=run_id).progress < 100
    assert not BacktestResultData.objects.filter(run_id=run_id).exists()


def test_user_code_error_on_worker_is_recorded_with_line_number(celery_worker, trader):
    from tests.backtests.api_support import USER_BROKEN_CODE

    client = client_for(trader)
    sid = client.post(f"{URL}strategies/", {"source": USER_BROKEN_CODE}, format="json").json()["id"]
    run_id = client.post(
        URL, {**SMA_BODY, "strategy": None, "strategy_id": sid, "params": {}}, format="json"
    ).json()["id"]
    wait_for(lambda: BacktestRun.objects.get(id=run_id).is_finished, timeout=60)
    status = client.get(f"{URL}{run_id}/status/").json()
    assert status["status"] == "failed"
    assert status["error"]["code"] == "strategy_error" and status["error"]["line"] == 7
    assert "ZeroDivisionError" in status["error"]["message"]


def test_killed_worker_run_is_sent_again_and_completed_by_another_worker(
    celery_worker, trader, tmp_path, settings
):
    settings.JOB_AUTO_RETRIES = 2
    client = client_for(trader)
    sid = client.post(f"{URL}strategies/", {"source": SLOW_CODE}, format="json").json()["id"]
    # Slow enough that the kill, a moment after 7 %, lands mid-run; the whole run is then done
    # again by the session worker, so no slower than that.
    body = {**SMA_BODY, "strategy": None, "strategy_id": sid, "params": {"work": 1500}}
    body["start"], body["end"] = "2023-01-01T00:00:00Z", "2025-01-01T00:00:00Z"
    run = backtest_create(user=trader, data=body, enqueue=False)
    # A queue only the doomed worker listens to, so the session worker cannot take the task.
    queue = f"backtests-doomed-{uuid.uuid4().hex[:8]}"

    with servers.celery_worker(
        concurrency=1, hostname="doomed", queues=queue, log_path=tmp_path / "doomed.log"
    ) as worker:
        job_send(run, RUN_TASK, queue=queue)
        wait_for(lambda: BacktestRun.objects.filter(id=run.id, progress__gte=7).exists(), timeout=60)
        # Alive and beating: the reaper leaves it alone.
        assert "backtests.BacktestRun" not in jobs_reap_stale(stale_after=timedelta(seconds=15))
        sandboxes = servers.children_of(worker.pid)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        for pid in sandboxes:  # the machine "died": its sandbox child goes too
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert BacktestRun.objects.get(id=run.id).status == JobStatus.RUNNING
    time.sleep(3.5)
    # Sent again, to the run task's own queue this time, where the session worker takes it.
    assert jobs_reap_stale(stale_after=timedelta(seconds=3))["backtests.BacktestRun"] == [run.id]
    assert client.get(f"{URL}{run.id}/status/").json()["attempt"] == 2
    wait_for(lambda: BacktestRun.objects.get(id=run.id).is_finished, timeout=120)
    status = client.get(f"{URL}{run.id}/status/").json()
    assert (status["status"], status["attempt"], status["error"]) == ("completed", 2, None)
    run.refresh_from_db()
    assert run.worker.startswith("test-worker") and run.headline["total_trades"] > 0
    assert BacktestResultData.objects.filter(run_id=run.id).count() == 1
