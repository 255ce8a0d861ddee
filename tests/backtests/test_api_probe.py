"""Regression tests for the API probe's findings on backtests (issue 14): bad input is a 4xx with
the one error body, never a 500 and never a stored row; the schema documents what the API answers."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from apps.backtests.models import BacktestRun, Optimization, Strategy
from apps.backtests.services import strategy_create
from tests.backtests.api_support import SMA_BODY, USER_SIGNAL_CODE, import_candles

pytestmark = pytest.mark.django_db

URL = "/api/v1/backtests/"
OPT_URL = f"{URL}optimizations/"
OPT_BODY = {**SMA_BODY, "space": {"fast": [5, 10], "slow": [30]}}


@pytest.fixture
def candles_1h(shared_data_dir):
    import_candles(shared_data_dir, "1h")


def assert_400(response, field: str) -> dict:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert any(key == field or key.startswith(field + ".") for key in error["fields"]), error
    return error


@pytest.mark.parametrize("url,body", [(URL, SMA_BODY), (OPT_URL, OPT_BODY)], ids=["run", "optimization"])
@pytest.mark.parametrize(
    "change,field",
    [
        ({"name": "bad\x00name"}, "name"),
        ({"symbol": "BTC/\x00USDT"}, "symbol"),
        ({"params": {"fast": "1\x00"}}, "params"),
        ({"fee": {"type": "flat\x00", "rate": 0.001}}, "fee"),
        ({"initial_cash": 1e30}, "initial_cash"),
        ({"name": []}, "name"),
        ({"name": {"a": 1}}, "name"),
        ({"start": True}, "start"),
        ({"end": [2024]}, "end"),
        ({"leverage": True}, "leverage"),
    ],
)
def test_bad_values_in_run_and_optimization_bodies_are_400_and_store_nothing(
    auth_client, candles_1h, url, body, change, field
):
    assert_400(auth_client.post(url, {**body, **change}, format="json"), field)
    assert not BacktestRun.objects.exists() and not Optimization.objects.exists()


def test_every_bad_field_is_reported_at_once(auth_client, candles_1h):
    body = {**SMA_BODY, "name": [], "start": True, "initial_cash": 1e30, "surprise": 1}
    error = assert_400(auth_client.post(URL, body, format="json"), "name")
    assert {"name", "start", "initial_cash", "surprise"} <= set(error["fields"])


def test_nul_in_the_optimization_space_is_400(auth_client, candles_1h):
    body = {**OPT_BODY, "space": {"fast\x00": [5]}}
    assert_400(auth_client.post(OPT_URL, body, format="json"), "space")


@pytest.mark.parametrize(
    "change,field",
    [
        ({"name": "x\x00"}, "name"),
        ({"description": "about\x00"}, "description"),
        ({"source": USER_SIGNAL_CODE + "\x00"}, "source"),
        ({"description": "d" * 1_000_000}, "description"),
        ({"name": []}, "name"),
    ],
)
def test_bad_strategy_text_is_400_on_create_and_update(auth_client, user, change, field):
    assert_400(
        auth_client.post(f"{URL}strategies/", {"source": USER_SIGNAL_CODE, **change}, format="json"), field
    )
    assert not Strategy.objects.exists()
    strategy = strategy_create(user=user, source=USER_SIGNAL_CODE)
    assert_400(auth_client.patch(f"{URL}strategies/{strategy.id}/", change, format="json"), field)
    strategy.refresh_from_db()
    assert strategy.version == 1 and "\x00" not in strategy.name + strategy.description


def test_nul_in_code_to_validate_is_400(auth_client):
    assert_400(
        auth_client.post(f"{URL}strategies/validate/", {"source": "x = 1\x00"}, format="json"), "source"
    )


def test_a_long_but_sane_description_is_accepted(auth_client):
    body = {"source": USER_SIGNAL_CODE, "description": "d" * 5000}
    assert auth_client.post(f"{URL}strategies/", body, format="json").status_code == 201


@pytest.fixture(scope="module")
def schema(django_db_blocker, tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("schema") / "schema.json"
    with django_db_blocker.unblock():
        call_command("spectacular", "--file", str(path), "--format", "openapi-json")
    return json.loads(path.read_text())


def successes(responses: dict) -> list[str]:
    """The 2xx answers an operation documents (error answers are added to every operation)."""
    assert "400" in responses, "every body operation documents its 400 error body"
    return [code for code in responses if code.startswith("2")]


def test_schema_documents_the_run_request_and_its_202_answer(schema):
    post = schema["paths"][URL]["post"]
    request = post["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = schema["components"]["schemas"][request]["properties"]
    assert {
        "strategy",
        "strategy_id",
        "strategy_version",
        "symbol",
        "timeframe",
        "start",
        "initial_cash",
    } <= set(properties)
    assert "strategy_id" in properties and properties["strategy_id"].get("description")
    assert successes(post["responses"]) == ["202"]
    answer = post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][answer]["properties"]) == {"id", "status", "status_url", "url"}
    assert successes(schema["paths"][OPT_URL]["post"]["responses"]) == ["202"]


def test_schema_declares_the_trades_export_as_csv(schema):
    responses = schema["paths"][URL + "{id}/trades/export/"]["get"]["responses"]
    assert list(responses["200"]["content"]) == ["text/csv"]


def test_schema_documents_strategy_and_cancel_bodies(schema):
    strategies = schema["paths"][URL + "strategies/"]["post"]
    assert "requestBody" in strategies and successes(strategies["responses"]) == ["201"]
    assert successes(schema["paths"][URL + "{id}/cancel/"]["post"]["responses"]) == ["202"]
    assert "requestBody" in schema["paths"][URL + "{id}/monte-carlo/"]["post"]
