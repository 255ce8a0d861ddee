"""An optimization split across two real Celery workers gives the sequential sweep's best parameters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from apps.backtests.engine import BacktestConfig, run_backtest
from apps.backtests.models import JobStatus, Optimization, OptimizationTrial
from apps.backtests.optimization import best_trial
from apps.backtests.services import load_candles
from apps.backtests.strategies.registry import build_strategy
from tests.backtests.api_support import SMA_BODY, import_candles, wait_for
from tests.factories import UserFactory
from tests.support import servers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_grid_over_two_workers_matches_sequential_sweep(celery_worker, shared_data_dir, tmp_path):
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
    with servers.celery_worker(concurrency=1, hostname="second", log_path=tmp_path / "second.log"):
        response = client.post("/api/v1/backtests/optimizations/", body, format="json")
        assert response.status_code == 202, response.json()
        opt_id = response.json()["id"]
        wait_for(lambda: Optimization.objects.get(id=opt_id).is_finished, timeout=120, interval=0.2)
    opt = Optimization.objects.get(id=opt_id)
    assert opt.status == JobStatus.COMPLETED, opt.error
    assert opt.completed == opt.total == 30 and opt.chunks_done == opt.chunks_total == 15
    hosts = {
        w.split("@")[0].rsplit("-", 2)[0]
        for w in OptimizationTrial.objects.filter(optimization=opt).values_list("worker", flat=True)
    }
    assert hosts == {"test-worker", "second"}, hosts  # both workers took chunks

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
    detail = client.get(f"/api/v1/backtests/optimizations/{opt_id}/").json()
    assert detail["best"]["params"] == expected["params"]
    assert detail["best"]["value"] == pytest.approx(expected["metrics"]["total_return"], rel=1e-12)
