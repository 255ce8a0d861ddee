"""A sweep shares its candles and indicators across combinations, and every trial keeps the metrics
of its combination run alone (built-in strategies in process, user code in its sandbox)."""

from __future__ import annotations

import json

import pytest

from apps.backtests.models import Optimization, OptimizationTrial
from apps.backtests.optimization import (
    _clean_metrics,
    evaluation_order,
    optimization_plan,
    optimization_run_chunk,
    sweep_cache_clear,
    sweep_data,
)
from apps.backtests.services import load_candles
from apps.backtests.services.runner import strategy_run
from apps.core.jobs import JobStatus
from apps.marketdata.models import Candle
from tests.backtests.api_support import SMA_BODY, USER_SIGNAL_CODE, import_candles

pytestmark = pytest.mark.django_db

URL = "/api/v1/backtests/optimizations/"
SPACE = {"fast": [5, 8, 12], "slow": [30, 40, 60, 90]}


@pytest.fixture
def candles_1h(shared_data_dir):
    sweep_cache_clear()
    import_candles(shared_data_dir, "1h")
    yield
    sweep_cache_clear()


def create(client, body, capture) -> Optimization:
    with capture(execute=False):
        response = client.post(URL, body, format="json")
    assert response.status_code == 202, response.json()
    return Optimization.objects.get(id=response.json()["id"])


def run_all(opt: Optimization) -> Optimization:
    for chunk in range(optimization_plan(optimization_id=opt.id, worker="inline")):
        optimization_run_chunk(optimization_id=opt.id, chunk=chunk, worker="inline")
    return Optimization.objects.get(id=opt.id)


def alone(opt: Optimization, params, source=None) -> dict:
    """The combination run by itself, as the trial stores it (through JSON)."""
    candles = load_candles(
        exchange=opt.exchange, symbol=opt.symbol, timeframe=opt.timeframe, start=opt.start, end=opt.end
    )
    result = strategy_run(
        kind=opt.strategy_kind,
        name=opt.strategy_name,
        source=source,
        params=params,
        candles=candles,
        config=opt.config,
    )
    return json.loads(json.dumps(_clean_metrics(result.metrics)))


def test_every_trial_has_exactly_the_metrics_of_its_combination_run_alone(
    auth_client, candles_1h, django_capture_on_commit_callbacks
):
    body = {**SMA_BODY, "params": {}, "kind": "grid", "space": SPACE, "chunk_size": 5}
    opt = run_all(create(auth_client, body, django_capture_on_commit_callbacks))
    assert opt.status == JobStatus.COMPLETED and opt.completed == opt.total == 12
    trials = list(OptimizationTrial.objects.filter(optimization=opt).order_by("index"))
    assert [t.index for t in trials] == list(range(12))
    for trial in trials:
        assert trial.params == opt.plan["combinations"][trial.index]
        assert trial.metrics == alone(opt, trial.params), trial.params


def test_a_sweep_computes_each_distinct_moving_average_once_per_worker(
    auth_client, candles_1h, django_capture_on_commit_callbacks
):
    body = {**SMA_BODY, "params": {}, "kind": "grid", "space": SPACE, "chunk_size": 4}
    opt = run_all(create(auth_client, body, django_capture_on_commit_callbacks))
    assert opt.status == JobStatus.COMPLETED and opt.chunks_total == 3
    scope = sweep_data(opt).scope
    assert scope.computed["indicators.sma"] == 3 + 4  # distinct windows, not 2 per combination
    assert scope.computed["candles.validate"] == 1

    # A second sweep over the same candles reuses them (and their averages).
    again = run_all(create(auth_client, body, django_capture_on_commit_callbacks))
    assert again.status == JobStatus.COMPLETED and sweep_data(again).scope is scope
    assert scope.computed["indicators.sma"] == 7


def test_a_changed_candle_set_is_read_again_for_the_next_sweep(
    auth_client, candles_1h, django_capture_on_commit_callbacks
):
    body = {**SMA_BODY, "params": {}, "kind": "grid", "space": SPACE}
    first = run_all(create(auth_client, body, django_capture_on_commit_callbacks))
    before = sweep_data(first)
    newest = Candle.objects.filter(timeframe="1h", open_time__lt=1_719_792_000_000).order_by("-open_time")
    Candle.objects.filter(id__in=list(newest.values_list("id", flat=True)[:24])).delete()
    second = run_all(create(auth_client, body, django_capture_on_commit_callbacks))
    after = sweep_data(second)
    assert second.plan["candles_digest"] != first.plan["candles_digest"] == before.digest
    assert after is not before and len(after.candles) == len(before.candles) - 24
    trial = OptimizationTrial.objects.filter(optimization=second).order_by("index").first()
    assert trial.metrics == alone(second, trial.params)


def test_chunks_take_tiles_of_the_grid_so_that_their_combinations_share_windows():
    combos = [{"fast": f, "slow": s} for f in range(5, 55, 5) for s in range(60, 260, 2)]  # 10 x 100
    order = evaluation_order(combos, ["fast", "slow"], 50)
    assert sorted(order) == list(range(len(combos)))

    def windows(indices):
        return len({combos[k]["fast"] for k in indices}) + len({combos[k]["slow"] for k in indices})

    chunks = [order[lo : lo + 50] for lo in range(0, len(order), 50)]
    in_grid_order = [list(range(lo, lo + 50)) for lo in range(0, len(combos), 50)]
    assert max(windows(c) for c in chunks) <= 16
    assert min(windows(c) for c in in_grid_order) == 51
    assert evaluation_order(combos[:40], ["fast", "slow"], 50) == list(range(40))  # one chunk


def test_cancelling_stops_a_running_chunk_without_storing_its_trials(
    auth_client, candles_1h, django_capture_on_commit_callbacks
):
    body = {**SMA_BODY, "params": {}, "kind": "grid", "space": SPACE, "chunk_size": 12}
    opt = create(auth_client, body, django_capture_on_commit_callbacks)
    assert optimization_plan(optimization_id=opt.id, worker="inline") == 1
    Optimization.objects.filter(id=opt.id).update(cancel_requested=True)
    optimization_run_chunk(optimization_id=opt.id, chunk=0, worker="inline")
    opt.refresh_from_db()
    assert opt.status == JobStatus.CANCELLED
    assert not OptimizationTrial.objects.filter(optimization=opt).exists()


@pytest.mark.slow
def test_a_user_strategy_sweep_runs_in_the_sandbox_with_the_metrics_of_each_combination_alone(
    auth_client, candles_1h, django_capture_on_commit_callbacks
):
    created = auth_client.post("/api/v1/backtests/strategies/", {"source": USER_SIGNAL_CODE}, format="json")
    assert created.status_code == 201, created.json()
    body = {
        **SMA_BODY,
        "strategy": None,
        "strategy_id": created.json()["id"],
        "params": {},
        "kind": "grid",
        "space": {"fast": [5, 10], "slow": [30]},
    }
    opt = run_all(create(auth_client, body, django_capture_on_commit_callbacks))
    assert opt.status == JobStatus.COMPLETED, opt.error
    source = opt.strategy_version.source
    for trial in OptimizationTrial.objects.filter(optimization=opt):
        assert not trial.error and trial.metrics == alone(opt, trial.params, source)
