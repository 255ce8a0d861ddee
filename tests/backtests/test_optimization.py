"""Optimizations: grid, random search and walk-forward through the API.

The chunks are executed in-process here with the same functions the Celery
tasks call (``optimization_plan`` + ``optimization_run_chunk``); the
multi-worker path is in ``test_optimization_workers.py``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from apps.backtests.engine import BacktestConfig, run_backtest
from apps.backtests.models import Optimization, OptimizationTrial
from apps.backtests.optimization import (
    best_trial,
    optimization_plan,
    optimization_run_chunk,
    walk_forward_windows,
)
from apps.backtests.services import load_candles
from apps.backtests.strategies.registry import build_strategy
from apps.core.jobs import JobStatus
from tests.backtests.api_support import SMA_BODY, import_candles

pytestmark = pytest.mark.django_db

URL = "/api/v1/backtests/optimizations/"
SPACE = {"fast": [5, 10, 20], "slow": {"min": 20, "max": 60, "step": 20}}


@pytest.fixture
def candles_1h(shared_data_dir):
    import_candles(shared_data_dir, "1h")


def run_all(opt_id: int) -> Optimization:
    for chunk in range(optimization_plan(optimization_id=opt_id, worker="inline")):
        optimization_run_chunk(optimization_id=opt_id, chunk=chunk, worker="inline")
    return Optimization.objects.get(id=opt_id)


def create(client, body, django_capture_on_commit_callbacks) -> int:
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(URL, body, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["status_url"].endswith(f"/optimizations/{response.json()['id']}/")
    return response.json()["id"]


def sequential_sweep(
    combos,
    objective="sharpe_ratio",
    start=datetime(2024, 1, 1, tzinfo=UTC),
    end=datetime(2024, 7, 1, tzinfo=UTC),
):
    candles = load_candles(exchange="binance", symbol="BTC/USDT", timeframe="1h", start=start, end=end)
    config = BacktestConfig(initial_cash=10000.0, fee=0.001)
    trials = []
    for k, params in enumerate(combos):
        result = run_backtest(candles, build_strategy("sma_crossover", params), config)
        trials.append({"index": k, "params": params, "metrics": result.metrics})
    return best_trial(trials, objective=objective, maximize=True)


def test_grid_search_finds_the_same_best_params_as_a_sequential_sweep(
    auth_client, candles_1h, django_capture_on_commit_callbacks
):
    body = {
        **SMA_BODY,
        "params": {},
        "kind": "grid",
        "space": SPACE,
        "objective": "sharpe_ratio",
        "chunk_size": 2,
    }
    opt = run_all(create(auth_client, body, django_capture_on_commit_callbacks))
    assert opt.status == JobStatus.COMPLETED
    # fast=20/slow=20 is refused by the strategy (fast < slow): skipped, not an error.
    assert opt.total == 8 and opt.plan["skipped"] == 1 and opt.chunks_total == 4
    expected = sequential_sweep(opt.plan["combinations"])
    detail = auth_client.get(f"{URL}{opt.id}/").json()
    assert detail["status"] == "completed" and detail["progress"] == 100 and detail["completed"] == 8
    assert detail["best"]["params"] == expected["params"]
    assert detail["best"]["value"] == pytest.approx(expected["metrics"]["sharpe_ratio"], rel=1e-12)


def test_results_sort_by_any_metric_or_param_and_heatmap(
    auth_client, candles_1h, django_capture_on_commit_callbacks
):
    body = {**SMA_BODY, "params": {}, "kind": "grid", "space": SPACE}
    opt = run_all(create(auth_client, body, django_capture_on_commit_callbacks))
    for metric in ("total_return", "max_drawdown", "win_rate"):
        rows = auth_client.get(f"{URL}{opt.id}/results/?ordering=-{metric}").json()["results"]
        values = [r["metrics"][metric] for r in rows if r["metrics"][metric] is not None]
        assert values == sorted(values, reverse=True)
    asc = auth_client.get(f"{URL}{opt.id}/results/?ordering=param__fast").json()["results"]
    assert [r["params"]["fast"] for r in asc] == sorted(r["params"]["fast"] for r in asc)
    heat = auth_client.get(f"{URL}{opt.id}/heatmap/?x=fast&y=slow&metric=total_return").json()
    assert heat["x_values"] == [5, 10, 20] and heat["y_values"] == [20, 40, 60]
    assert heat["z"][0][2] is None  # fast=20, slow=20 was never valid
    trial = OptimizationTrial.objects.get(optimization=opt, params__fast=10, params__slow=40)
    assert heat["z"][1][1] == pytest.approx(trial.metrics["total_return"])
    bad = auth_client.get(f"{URL}{opt.id}/heatmap/?x=fast&y=nope")
    assert bad.status_code == 400 and bad.json()["error"]["fields"]["y"]
    assert auth_client.get(f"{URL}{opt.id}/results/?ordering=nonsense").status_code == 400


def test_random_search_samples_reproducibly(auth_client, candles_1h, django_capture_on_commit_callbacks):
    body = {
        **SMA_BODY,
        "params": {},
        "kind": "random",
        "space": {"fast": {"min": 2, "max": 30}, "slow": [40, 50, 60]},
        "samples": 12,
        "seed": 3,
    }
    a = Optimization.objects.get(id=create(auth_client, body, django_capture_on_commit_callbacks))
    b = Optimization.objects.get(id=create(auth_client, body, django_capture_on_commit_callbacks))
    assert a.total == 12 and a.plan["combinations"] == b.plan["combinations"]
    opt = run_all(a.id)
    assert (
        opt.status == JobStatus.COMPLETED and OptimizationTrial.objects.filter(optimization=opt).count() == 12
    )


def test_walk_forward_reports_in_and_out_of_sample(
    auth_client, candles_1h, django_capture_on_commit_callbacks
):
    body = {
        **SMA_BODY,
        "start": "2023-01-01T00:00:00Z",
        "end": "2025-01-01T00:00:00Z",
        "params": {},
        "kind": "walk_forward",
        "space": {"fast": [5, 10], "slow": [30, 50]},
        "walk_forward": {"windows": 3, "in_sample_fraction": 0.7},
    }
    opt = run_all(create(auth_client, body, django_capture_on_commit_callbacks))
    assert opt.status == JobStatus.COMPLETED, opt.error
    assert opt.total == 12
    report = auth_client.get(f"{URL}{opt.id}/").json()["walk_forward"]
    windows = report["windows"]
    assert len(windows) == 3
    for prev, win in itertools.pairwise(windows):
        assert win["out_of_sample"]["start"] == prev["out_of_sample"]["end"]  # OOS parts tile the data
    for win in windows:
        assert win["in_sample"]["end"] == win["out_of_sample"]["start"]
        assert win["best_params"] in opt.plan["combinations"]
        assert win["in_sample_metrics"]["sharpe_ratio"] is not None
        assert win["out_of_sample_metrics"]["total_trades"] >= 0
        # The IS winner really is the best of its window.
        rows = auth_client.get(f"{URL}{opt.id}/results/?window={win['index']}&ordering=-sharpe_ratio").json()[
            "results"
        ]
        assert rows[0]["params"] == win["best_params"]
    summary = report["summary"]
    assert (
        summary["in_sample_objective_mean"] is not None
        and summary["out_of_sample_objective_mean"] is not None
    )
    assert "efficiency" in summary


def test_walk_forward_windows_rolling_and_anchored():
    rolling = walk_forward_windows(0, 1000, windows=4, in_sample_fraction=0.6, anchored=False)
    assert rolling[0]["is_start"] == 0 and rolling[-1]["oos_end"] == 1000
    lengths = {w["is_end"] - w["is_start"] for w in rolling}
    assert max(lengths) - min(lengths) <= 1
    anchored = walk_forward_windows(0, 1000, windows=4, in_sample_fraction=0.6, anchored=True)
    assert all(w["is_start"] == 0 for w in anchored)


def test_cancel_optimization(auth_client, candles_1h, django_capture_on_commit_callbacks):
    opt_id = create(
        auth_client, {**SMA_BODY, "params": {}, "space": SPACE}, django_capture_on_commit_callbacks
    )
    response = auth_client.post(f"{URL}{opt_id}/cancel/")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert optimization_plan(optimization_id=opt_id) == 0
    assert auth_client.post(f"{URL}{opt_id}/cancel/").status_code == 409
    assert auth_client.delete(f"{URL}{opt_id}/").status_code == 204
    assert auth_client.get(f"{URL}{opt_id}/").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"space": {"nope": [1, 2]}}, "space.nope"),
        ({"space": {"fast": {"min": 2, "max": 400}, "slow": {"min": 3, "max": 400}}}, "space"),
        ({"space": {"fast": {"min": 9, "max": 3}}}, "space.fast"),
        ({"space": {"fast": "abc"}}, "space.fast"),
        ({"space": {}}, "space"),
        ({"space": {"fast": [60], "slow": [10]}}, "space.fast"),
        ({"objective": "happiness"}, "objective"),
        ({"kind": "genetic"}, "kind"),
        ({"samples": 0, "kind": "random"}, "samples"),
        ({"maximize": "yes"}, "maximize"),
        ({"walk_forward": {"windows": 0}, "kind": "walk_forward"}, "walk_forward.windows"),
        ({"walk_forward": {"windows": 2}}, "walk_forward"),
        ({"symbol": "NOPE/USDT"}, "symbol"),
        ({"timeframe": "7m"}, "timeframe"),
        ({"fee": -1}, "fee"),
    ],
)
def test_bad_optimization_input_is_400_with_fields(auth_client, candles_1h, change, field):
    body = {**SMA_BODY, "params": {}, "space": SPACE, **change}
    response = auth_client.post(URL, body, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["message"]
    assert any(key.startswith(field) for key in error["fields"]), error


def test_optimizations_are_scoped_to_their_owner(
    auth_client, other_user, candles_1h, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    opt_id = create(
        auth_client, {**SMA_BODY, "params": {}, "space": SPACE}, django_capture_on_commit_callbacks
    )
    other = APIClient()
    other.force_authenticate(other_user)
    for method, suffix in (
        ("get", ""),
        ("get", "results/"),
        ("get", "heatmap/?x=fast&y=slow"),
        ("post", "cancel/"),
        ("delete", ""),
    ):
        response = getattr(other, method)(f"{URL}{opt_id}/{suffix}")
        assert response.status_code == 404, (method, suffix)
        assert response.json()["error"]["code"] == "not_found"
    assert other.get(URL).json()["count"] == 0
    assert auth_client.get(URL).json()["count"] == 1
