"""Bad input on every backtests endpoint is a 4xx with the project's error body; other users' objects are 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.backtests.models import BacktestRun
from apps.backtests.services import backtest_create, backtest_execute, strategy_create
from tests.backtests.api_support import SMA_BODY, USER_SIGNAL_CODE, import_candles

pytestmark = pytest.mark.django_db

URL = "/api/v1/backtests/"


@pytest.fixture
def candles_1h(shared_data_dir):
    import_candles(shared_data_dir, "1h")


@pytest.fixture
def other_client(other_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(other_user)
    return client


def assert_error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "fields"} and error["message"]
    if field is not None:
        assert any(key == field or key.startswith(field + ".") for key in error["fields"]), error
    return error


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"strategy": "no_such_strategy"}, "strategy"),
        ({"strategy": None}, "strategy"),
        ({"strategy": 5}, "strategy"),
        ({"strategy_id": 999999, "strategy": None}, "strategy_id"),
        ({"strategy_id": "abc", "strategy": None}, "strategy_id"),
        ({"params": {"fast": "quick"}}, "params.fast"),
        ({"params": {"fast": 1}}, "params.fast"),
        ({"params": {"bogus": 1}}, "params.bogus"),
        ({"params": {"fast": 50, "slow": 10}}, "params"),
        ({"params": [1, 2]}, "params"),
        ({"symbol": "NOPE/USDT"}, "symbol"),
        ({"symbol": ""}, "symbol"),
        ({"timeframe": "7m"}, "timeframe"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2024-06-01", "end": "2024-01-01"}, "end"),
        ({"start": "2030-01-01", "end": "2031-01-01"}, "start"),
        ({"initial_cash": "-5"}, "initial_cash"),
        ({"initial_cash": "lots"}, "initial_cash"),
        ({"fee": -0.5}, "fee"),
        ({"fee": {"type": "magic"}}, "fee"),
        ({"slippage": {"type": "nope"}}, "slippage"),
        ({"sizing": {"type": "all_in"}}, "sizing"),
        ({"leverage": 500}, "leverage"),
        ({"market_type": "spot", "leverage": 5}, "leverage"),
        ({"allow_short": True}, "allow_short"),
        ({"margin_mode": "yolo", "market_type": "futures"}, "margin_mode"),
        ({"stop_loss": 2}, "stop_loss"),
        ({"surprise": 1}, "surprise"),
        ({"name": "x" * 300}, "name"),
    ],
)
def test_bad_run_input_is_400_with_field_messages(auth_client, candles_1h, change, field):
    response = auth_client.post(URL, {**SMA_BODY, **change}, format="json")
    assert_error(response, 400, field)
    assert not BacktestRun.objects.exists()


@pytest.mark.parametrize("payload", [[], "text", 5])
def test_non_object_bodies_are_400(auth_client, candles_1h, payload):
    assert_error(auth_client.post(URL, payload, format="json"), 400)
    assert_error(auth_client.post(f"{URL}strategies/", payload, format="json"), 400)
    assert_error(auth_client.post(f"{URL}strategies/validate/", payload, format="json"), 400)
    assert_error(auth_client.post(f"{URL}optimizations/", payload, format="json"), 400)


def test_malformed_json_is_400(auth_client):
    response = auth_client.generic("POST", URL, "{not json", content_type="application/json")
    assert_error(response, 400)


@pytest.mark.parametrize(
    "query",
    ["status=sleeping", "ordering=price", "created_after=notadate", "strategy_id=abc"],
)
def test_bad_list_filters_are_400(auth_client, query):
    assert_error(auth_client.get(f"{URL}?{query}"), 400)


def test_bad_query_parameters_on_run_endpoints(auth_client, user, candles_1h):
    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    backtest_execute(run_id=run.id)
    base = f"{URL}{run.id}/"
    for suffix in (
        "trades/?side=up",
        "trades/?outcome=draw",
        "trades/?ordering=color",
        "trades/?start=tomorrow",
        "trades/export/?side=up",
        "equity/?points=-1",
        "equity/?points=many",
        "equity/?points=999999",
        "equity/?start=notatime",
        "positions/?end=notatime",
        "candles/?points=1",
    ):
        assert_error(auth_client.get(base + suffix), 400)
    assert_error(auth_client.get(base + "trades/?page=999"), 404)
    for body in (
        {"simulations": 1},
        {"method": "magic"},
        {"seed": -1},
        {"extra": 1},
        {"simulations": "many"},
    ):
        assert_error(auth_client.post(base + "monte-carlo/", body, format="json"), 400)
    assert_error(auth_client.get(f"{URL}compare/?ids=abc"), 400)
    assert_error(auth_client.get(f"{URL}compare/?ids={run.id},99999999"), 404)


def test_every_run_endpoint_is_404_for_another_user(auth_client, other_client, user, candles_1h):
    run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
    backtest_execute(run_id=run.id)
    base = f"{URL}{run.id}/"
    for method, suffix in [
        ("get", ""),
        ("get", "status/"),
        ("get", "results/"),
        ("get", "trades/"),
        ("get", "trades/export/"),
        ("get", "equity/"),
        ("get", "positions/"),
        ("get", "candles/"),
        ("get", "monte-carlo/"),
        ("post", "monte-carlo/"),
        ("post", "cancel/"),
        ("delete", ""),
    ]:
        error = assert_error(getattr(other_client, method)(base + suffix), 404)
        assert error["code"] == "not_found"
    assert_error(other_client.get(f"{URL}compare/?ids={run.id},{run.id}"), 404)
    assert other_client.get(URL).json()["count"] == 0
    assert other_client.get(f"{URL}strategies/performance/").json()["count"] == 0
    assert BacktestRun.objects.filter(id=run.id).exists()
    # And a user cannot run another user's strategy.
    strategy = strategy_create(user=user, source=USER_SIGNAL_CODE)
    body = {**SMA_BODY, "strategy": None, "strategy_id": strategy.id, "params": {}}
    assert_error(other_client.post(URL, body, format="json"), 400, "strategy_id")


def test_unknown_ids_are_404(auth_client):
    for path in (
        f"{URL}999999/",
        f"{URL}999999/results/",
        f"{URL}strategies/999999/",
        f"{URL}optimizations/999999/",
    ):
        assert_error(auth_client.get(path), 404)


def test_anonymous_requests_are_401(api_client):
    for path in (URL, f"{URL}strategies/", f"{URL}strategies/builtin/", f"{URL}optimizations/"):
        response = api_client.get(path)
        assert response.status_code == 401 and response.json()["error"]["code"]
