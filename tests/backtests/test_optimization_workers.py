"""Optimizations on real Celery workers: two workers share a grid and agree with a sequential sweep;
progress reaches a WebSocket client; a running optimization can be cancelled."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest
import websockets
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from apps.backtests.engine import BacktestConfig, run_backtest
from apps.backtests.models import BacktestRun, Optimization, OptimizationTrial
from apps.backtests.optimization import best_trial
from apps.backtests.services import load_candles
from apps.backtests.strategies.registry import build_strategy
from apps.core.jobs import JobStatus
from tests.backtests.api_support import SMA_BODY, import_candles, post_in_thread, wait_for
from tests.factories import UserFactory
from tests.support import aio, servers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

URL = "/api/v1/backtests/optimizations/"


def test_grid_over_two_workers_matches_sequential_sweep_and_streams_progress(
    celery_worker, live_server_url, shared_data_dir, tmp_path
):
    import_candles(shared_data_dir, "1h")
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    body = {
        **SMA_BODY,
        "start": "2023-01-01T00:00:00Z",
        "end": "2025-01-01T00:00:00Z",
        "params": {},
        "kind": "grid",
        "space": {"fast": [4, 8, 12, 16, 20], "slow": [30, 40, 50, 60, 80, 100]},
        "objective": "total_return",
        "chunk_size": 2,
    }
    token = str(AccessToken.for_user(user))
    ws_url = live_server_url.replace("http://", "ws://") + f"/ws/events/?token={token}"
    events: list[dict] = []

    async def scenario() -> int:
        async with websockets.connect(ws_url, origin="http://127.0.0.1") as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            response = await asyncio.to_thread(post_in_thread, client, URL, body)
            assert response.status_code == 202, response.json()
            opt_id = response.json()["id"]

            async def until_done():
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"].startswith("optimization.") and event["payload"]["id"] == opt_id:
                        events.append(event)
                        if event["type"] == "optimization.status" and event["payload"]["status"] != "running":
                            return

            await asyncio.wait_for(until_done(), 120)
            return opt_id

    with servers.celery_worker(concurrency=1, hostname="second", log_path=tmp_path / "second.log"):
        opt_id = aio.run(scenario())
    opt = Optimization.objects.get(id=opt_id)
    assert opt.status == JobStatus.COMPLETED, opt.error
    assert opt.completed == opt.total == 30 and opt.chunks_done == opt.chunks_total == 15
    hosts = {
        w.split("@")[0].rsplit("-", 2)[0]
        for w in OptimizationTrial.objects.filter(optimization=opt).values_list("worker", flat=True)
    }
    assert hosts == {"test-worker", "second"}, hosts  # both workers took chunks
    progress = [e["payload"] for e in events if e["type"] == "optimization.progress"]
    assert progress and all(0 < p["completed"] <= 30 and p["total"] == 30 for p in progress)
    assert events[-1]["payload"]["status"] == "completed" and events[-1]["payload"]["best"]["params"]

    candles = load_candles(
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        start=datetime(2023, 1, 1, tzinfo=UTC),
        end=datetime(2025, 1, 1, tzinfo=UTC),
    )
    config = BacktestConfig(initial_cash=10000.0, fee=0.001)
    trials = [
        {
            "index": k,
            "params": p,
            "metrics": run_backtest(candles, build_strategy("sma_crossover", p), config).metrics,
        }
        for k, p in enumerate(opt.plan["combinations"])
    ]
    expected = best_trial(trials, objective="total_return", maximize=True)
    detail = client.get(f"{URL}{opt_id}/").json()
    assert detail["best"]["params"] == expected["params"]
    assert detail["best"]["value"] == pytest.approx(expected["metrics"]["total_return"], rel=1e-12)
    # The best parameters' lookahead check runs on a worker after the sweep.
    wait_for(lambda: Optimization.objects.get(id=opt_id).lookahead_verdict == "ok", timeout=60)


def test_cancel_a_running_optimization(celery_worker, shared_data_dir):
    from tests.backtests.test_tasks_worker import SLOW_CODE

    import_candles(shared_data_dir, "1h")
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    sid = client.post("/api/v1/backtests/strategies/", {"source": SLOW_CODE}, format="json").json()["id"]
    body = {
        **SMA_BODY,
        "strategy": None,
        "strategy_id": sid,
        "params": {},
        "space": {"work": [100000, 100001, 100002, 100003]},  # ~20 s per combination
        "chunk_size": 1,
    }
    opt_id = client.post(URL, body, format="json").json()["id"]
    wait_for(lambda: Optimization.objects.get(id=opt_id).chunks_total > 0, timeout=60)
    time.sleep(1.0)  # the sandboxes are busy with their first combinations
    response = client.post(f"{URL}{opt_id}/cancel/")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    cancelled_at = time.monotonic()
    # The busy chunks notice within a fraction of a second and free the worker: a new run
    # completes long before the ~20 s one combination would take.
    run_id = client.post("/api/v1/backtests/", SMA_BODY, format="json").json()["id"]
    wait_for(lambda: BacktestRun.objects.get(id=run_id).status == JobStatus.COMPLETED, timeout=10)
    assert time.monotonic() - cancelled_at < 8
    assert OptimizationTrial.objects.filter(optimization_id=opt_id).count() == 0
    assert Optimization.objects.get(id=opt_id).status == JobStatus.CANCELLED
