"""Backtest runs through the API: create, execute (service called as the worker would), read results.

The real worker / WebSocket / cancel / killed-worker paths are in ``test_tasks_worker.py``;
here the run is executed in-process by ``backtest_execute`` (the exact function the task calls)
so every endpoint can be checked quickly against the engine called directly.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from apps.backtests import storage
from apps.backtests.engine import BacktestConfig, run_backtest
from apps.backtests.models import BacktestRun, BacktestTrade
from apps.backtests.services import backtest_create, backtest_execute, load_candles
from apps.backtests.strategies.registry import build_strategy
from apps.core.jobs import JobStatus
from tests.backtests.api_support import SMA_BODY, import_candles

pytestmark = pytest.mark.django_db

URL = "/api/v1/backtests/"


@pytest.fixture
def candles_1h(shared_data_dir):
    import_candles(shared_data_dir, "1h")


@pytest.fixture
def done_run(user, candles_1h):
    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    assert backtest_execute(run_id=run.id) == JobStatus.COMPLETED
    run.refresh_from_db()
    return run


def engine_result():
    from datetime import UTC, datetime

    candles = load_candles(
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 7, 1, tzinfo=UTC),
    )
    config = BacktestConfig(initial_cash=10000.0, fee=0.001)
    return run_backtest(candles, build_strategy("sma_crossover", {"fast": 10, "slow": 30}), config)


def test_create_answers_202_with_id_and_status_url(
    auth_client, candles_1h, django_capture_on_commit_callbacks
):
    # The enqueue happens on commit; captured here (not executed) so no broker is needed.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = auth_client.post(URL, SMA_BODY, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "pending"
    assert body["status_url"] == f"{URL}{body['id']}/status/"
    assert response["Location"] == f"{URL}{body['id']}/"
    assert len(callbacks) == 1
    run = BacktestRun.objects.get(id=body["id"])
    assert run.config["fee"] and run.config["initial_cash"] == 10000.0
    assert run.strategy_kind == "builtin" and run.params == {"fast": 10, "slow": 30}


def test_results_trades_equity_match_the_engine_called_directly(auth_client, done_run):
    direct = engine_result()
    results = auth_client.get(f"{URL}{done_run.id}/results/").json()
    assert set(results["metrics"]) == set(direct.metrics)
    for key, value in direct.metrics.items():
        if value is None:
            assert results["metrics"][key] is None
        else:
            assert results["metrics"][key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    assert results["summary"]["trades"] == len(direct.trade_columns["pnl"])

    equity = auth_client.get(f"{URL}{done_run.id}/equity/?points=0").json()
    assert equity["total_points"] == len(direct.equity)
    np.testing.assert_array_equal(np.array(equity["timestamps"]), direct.equity_timestamps)
    np.testing.assert_allclose(np.array(equity["equity"]), direct.equity, rtol=0, atol=1e-7)

    trades = auth_client.get(f"{URL}{done_run.id}/trades/?page_size=500").json()
    assert trades["count"] == len(direct.trade_columns["pnl"])
    first = trades["results"][0]
    assert float(first["pnl"]) == pytest.approx(direct.trade_columns["pnl"][0], rel=1e-12)
    assert first["entry_ts"] == direct.trade_columns["entry_time"][0]
    assert first["side"] == direct.trade_columns["side"][0]


def test_equity_is_downsampled_keeping_the_extremes(auth_client, done_run):
    full = auth_client.get(f"{URL}{done_run.id}/equity/?points=0").json()
    small = auth_client.get(f"{URL}{done_run.id}/equity/?points=200").json()
    assert small["points"] <= 200 < full["points"]
    assert min(small["equity"]) == min(full["equity"]) and max(small["equity"]) == max(full["equity"])
    assert min(small["drawdown"]) <= min(full["drawdown"]) + 1e-6
    assert (
        small["timestamps"][0] == full["timestamps"][0] and small["timestamps"][-1] == full["timestamps"][-1]
    )


def test_curves_are_stored_compactly_not_as_rows(done_run):
    blob = bytes(done_run.result.equity_blob)
    arrays = storage.unpack(blob)
    assert len(arrays["equity"]) == done_run.candles
    assert len(blob) < 24 * done_run.candles  # well under 3 raw float64 columns
    assert BacktestTrade.objects.filter(run=done_run).count() == done_run.total_trades


def test_trades_filter_by_side_outcome_dates_and_order(auth_client, done_run):
    base = f"{URL}{done_run.id}/trades/"
    all_trades = auth_client.get(base + "?page_size=500").json()["results"]
    wins = auth_client.get(base + "?outcome=win&page_size=500").json()["results"]
    losses = auth_client.get(base + "?outcome=loss&page_size=500").json()["results"]
    assert len(wins) + len(losses) == len(all_trades)
    assert all(float(t["pnl"]) > 0 for t in wins)
    assert auth_client.get(base + "?side=short").json()["count"] == 0
    mid = all_trades[len(all_trades) // 2]["entry_time"]
    later = auth_client.get(base + f"?start={mid}&page_size=500").json()["results"]
    assert later and all(t["entry_time"] >= mid for t in later)
    by_pnl = auth_client.get(base + "?ordering=-pnl&page_size=500").json()["results"]
    assert [float(t["pnl"]) for t in by_pnl] == sorted((float(t["pnl"]) for t in all_trades), reverse=True)
    page = auth_client.get(base + "?page=2&page_size=5").json()
    assert [t["n"] for t in page["results"]] == [6, 7, 8, 9, 10]


def test_csv_export_streams_every_trade(auth_client, done_run):
    response = auth_client.get(f"{URL}{done_run.id}/trades/export/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == done_run.total_trades
    assert rows[0]["side"] == "long" and float(rows[0]["entry_price"]) > 0


def test_positions_status_detail_list_and_candles(auth_client, done_run):
    positions = auth_client.get(f"{URL}{done_run.id}/positions/").json()
    assert positions["count"] == len(positions["timestamps"]) >= done_run.total_trades
    assert set(positions["side"]) <= {"long", "flat", "short"}
    status = auth_client.get(f"{URL}{done_run.id}/status/").json()
    assert status["status"] == "completed" and status["progress"] == 100 and status["duration_seconds"] >= 0
    detail = auth_client.get(f"{URL}{done_run.id}/").json()
    assert detail["headline"]["total_trades"] == done_run.total_trades
    assert detail["strategy"] == {
        "kind": "builtin",
        "name": "sma_crossover",
        "id": None,
        "version": None,
        "code_hash": None,
    }
    listing = auth_client.get(URL + "?status=completed&strategy=sma_crossover&symbol=BTC/USDT").json()
    assert [r["id"] for r in listing["results"]] == [done_run.id]
    assert auth_client.get(URL + "?status=failed").json()["count"] == 0
    candles = auth_client.get(f"{URL}{done_run.id}/candles/?points=500").json()
    assert candles["timeframe"] in ("4h", "1d") and 0 < len(candles["close"]) <= 500


def test_monte_carlo_gives_confidence_intervals(auth_client, done_run):
    url = f"{URL}{done_run.id}/monte-carlo/"
    assert auth_client.get(url).status_code == 404
    response = auth_client.post(url, {"simulations": 500, "seed": 7}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    ret, dd = body["total_return"], body["max_drawdown"]
    assert ret["p5"] <= ret["p50"] <= ret["p95"]
    assert dd["p5"] <= dd["p50"] <= dd["p95"] <= 0
    # Shuffling keeps the same trades: every ordering compounds to the same total return.
    assert ret["p5"] == pytest.approx(ret["p95"], rel=1e-9)
    assert ret["original"] == pytest.approx(done_run.result.metrics["total_return"], rel=0.05, abs=0.02)
    boot = auth_client.post(url, {"simulations": 500, "method": "bootstrap", "seed": 7}, format="json").json()
    assert boot["total_return"]["p5"] < boot["total_return"]["p95"]
    assert auth_client.get(url).json()["method"] == "bootstrap"


def test_delete_answers_204_and_removes_everything(auth_client, done_run):
    assert auth_client.delete(f"{URL}{done_run.id}/").status_code == 204
    assert not BacktestRun.objects.filter(id=done_run.id).exists()
    assert not BacktestTrade.objects.filter(run_id=done_run.id).exists()
    assert auth_client.get(f"{URL}{done_run.id}/").status_code == 404


def test_cancel_pending_run_at_once_and_conflict_when_finished(auth_client, user, candles_1h, done_run):
    pending = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    response = auth_client.post(f"{URL}{pending.id}/cancel/")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    # The worker that later receives the task finds nothing to do.
    assert backtest_execute(run_id=pending.id) is None
    conflict = auth_client.post(f"{URL}{done_run.id}/cancel/")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"


def test_results_of_unfinished_run_are_409(auth_client, user, candles_1h):
    pending = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    for suffix in ("results/", "trades/", "equity/", "positions/", "trades/export/", "monte-carlo/"):
        response = auth_client.get(f"{URL}{pending.id}/{suffix}")
        assert response.status_code == 409, suffix
        assert response.json()["error"]["message"]


def test_compare_runs_side_by_side(auth_client, user, done_run):
    other = backtest_create(user=user, data={**SMA_BODY, "params": {"fast": 5, "slow": 50}}, enqueue=False)
    backtest_execute(run_id=other.id)
    body = auth_client.get(f"{URL}compare/?ids={done_run.id},{other.id}").json()
    assert [r["id"] for r in body["runs"]] == [done_run.id, other.id]
    assert body["runs"][0]["metrics"] != body["runs"][1]["metrics"]
    assert auth_client.get(f"{URL}compare/?ids={done_run.id}").status_code == 400


def test_strategy_performance_across_runs(auth_client, user, done_run):
    other = backtest_create(user=user, data={**SMA_BODY, "params": {"fast": 5, "slow": 50}}, enqueue=False)
    backtest_execute(run_id=other.id)
    rows = auth_client.get(f"{URL}strategies/performance/").json()["results"]
    assert len(rows) == 1 and rows[0]["strategy_name"] == "sma_crossover" and rows[0]["runs"] == 2
    assert rows[0]["worst_total_return"] <= rows[0]["avg_total_return"] <= rows[0]["best_total_return"]


def test_user_code_error_is_recorded_with_its_line(auth_client, user, candles_1h):
    from tests.backtests.api_support import USER_BROKEN_CODE

    created = auth_client.post(f"{URL}strategies/", {"source": USER_BROKEN_CODE}, format="json")
    assert created.status_code == 201, created.json()
    run = backtest_create(
        user=user,
        data={**SMA_BODY, "strategy": None, "strategy_id": created.json()["id"], "params": {}},
        enqueue=False,
    )
    assert backtest_execute(run_id=run.id) == JobStatus.FAILED
    detail = auth_client.get(f"{URL}{run.id}/").json()
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "strategy_error"
    assert detail["error"]["line"] == 7
    assert "ZeroDivisionError" in detail["error"]["message"] and "line 7" in detail["error"]["message"]
