"""Strategies API: built-ins from the registry, user strategies with versions, validate with line numbers."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.backtests.models import BacktestRun, StrategyVersion
from apps.backtests.services import backtest_create, backtest_execute
from apps.backtests.strategies.registry import list_strategies
from tests.backtests.api_support import SMA_BODY, USER_SIGNAL_CODE, import_candles

pytestmark = pytest.mark.django_db

URL = "/api/v1/backtests/strategies/"


def test_builtins_come_from_the_registry(auth_client):
    body = auth_client.get(f"{URL}builtin/").json()
    assert [s["name"] for s in body["results"]] == [info.name for info in list_strategies()]
    sma = next(s for s in body["results"] if s["name"] == "sma_crossover")
    assert sma["style"] == "signal" and sma["params"]["fast"]["type"] == "int"


def test_validate_reports_problems_with_line_numbers(auth_client):
    ok = auth_client.post(f"{URL}validate/", {"source": USER_SIGNAL_CODE}, format="json").json()
    assert ok["valid"] is True and ok["issues"] == []
    assert ok["strategy"]["name"] == "my_cross" and set(ok["strategy"]["params"]) == {"fast", "slow"}

    bad = "import os\n\nclass X(Strategy):\n    name = 'x'\n    def on_data(self, candle):\n        open('/etc/passwd')\n"
    body = auth_client.post(f"{URL}validate/", {"source": bad}, format="json").json()
    assert body["valid"] is False
    lines = {issue["line"] for issue in body["issues"]}
    assert 1 in lines and 6 in lines

    syntax = auth_client.post(
        f"{URL}validate/", {"source": "class X(Strategy):\n    def on_data(self\n"}, format="json"
    )
    assert syntax.status_code == 200 and syntax.json()["valid"] is False
    assert syntax.json()["issues"][0]["line"] >= 2

    assert auth_client.post(f"{URL}validate/", {}, format="json").status_code == 400


def test_create_update_versions_and_runs_record_their_code_version(auth_client, user, shared_data_dir):
    import_candles(shared_data_dir, "1h")
    created = auth_client.post(URL, {"source": USER_SIGNAL_CODE}, format="json")
    assert created.status_code == 201, created.json()
    strategy = created.json()
    assert strategy["name"] == "my_cross" and strategy["version"] == 1 and strategy["style"] == "signal"

    run1 = backtest_create(
        user=user,
        data={**SMA_BODY, "strategy": None, "strategy_id": strategy["id"], "params": {"fast": 8}},
        enqueue=False,
    )
    assert backtest_execute(run_id=run1.id) == "completed"

    v2_source = USER_SIGNAL_CODE.replace('Param("int", 10,', 'Param("int", 12,')
    updated = auth_client.patch(
        f"{URL}{strategy['id']}/", {"source": v2_source, "description": "tuned"}, format="json"
    )
    assert updated.status_code == 200 and updated.json()["version"] == 2
    assert (
        auth_client.patch(f"{URL}{strategy['id']}/", {"description": "again"}, format="json").json()[
            "version"
        ]
        == 2
    )

    run2 = backtest_create(
        user=user,
        data={**SMA_BODY, "strategy": None, "strategy_id": strategy["id"], "params": {}},
        enqueue=False,
    )
    run_v1 = backtest_create(
        user=user,
        data={**SMA_BODY, "strategy": None, "strategy_id": strategy["id"], "strategy_version": 1},
        enqueue=False,
    )
    assert (run1.code_version, run2.code_version, run_v1.code_version) == (1, 2, 1)
    assert run2.params == {"fast": 12, "slow": 30}  # v2's default
    assert run1.code_hash != run2.code_hash

    versions = auth_client.get(f"{URL}{strategy['id']}/versions/").json()
    assert [v["version"] for v in versions["results"]] == [2, 1]
    assert auth_client.get(f"{URL}{strategy['id']}/versions/1/").json()["source"] == USER_SIGNAL_CODE
    assert auth_client.get(f"{URL}{strategy['id']}/versions/9/").status_code == 404

    detail = auth_client.get(f"/api/v1/backtests/{run1.id}/").json()
    assert detail["strategy"]["kind"] == "user" and detail["strategy"]["version"] == 1

    # Deleting the strategy keeps its runs and what code they ran.
    assert auth_client.delete(f"{URL}{strategy['id']}/").status_code == 204
    run1 = BacktestRun.objects.get(id=run1.id)
    assert run1.strategy_id is None and run1.code_version == 1 and run1.code_hash
    assert not StrategyVersion.objects.exists()


def test_invalid_code_and_names_are_refused(auth_client):
    bad = auth_client.post(URL, {"source": "import socket\n"}, format="json")
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "invalid_code" and "line 1" in error["fields"]["source"][0]
    assert error["fields"]["issues"][0]["line"] == 1
    assert auth_client.post(URL, {"name": "x"}, format="json").status_code == 400
    assert (
        auth_client.post(URL, {"source": USER_SIGNAL_CODE, "color": "red"}, format="json").status_code == 400
    )
    first = auth_client.post(URL, {"source": USER_SIGNAL_CODE, "name": "mine"}, format="json")
    assert first.status_code == 201
    dup = auth_client.post(URL, {"source": USER_SIGNAL_CODE, "name": "mine"}, format="json")
    assert dup.status_code == 400 and dup.json()["error"]["fields"]["name"]
    sid = first.json()["id"]
    assert auth_client.patch(f"{URL}{sid}/", {"source": "import os\n"}, format="json").status_code == 400
    assert auth_client.patch(f"{URL}{sid}/", {"name": ""}, format="json").status_code == 400
    assert auth_client.put(f"{URL}{sid}/", {"name": "other"}, format="json").status_code == 400
    assert auth_client.get(f"{URL}{sid}/").json()["version"] == 1


def test_strategies_are_scoped_to_their_owner(auth_client, other_user):
    sid = auth_client.post(URL, {"source": USER_SIGNAL_CODE}, format="json").json()["id"]
    other = APIClient()
    other.force_authenticate(other_user)
    for method, suffix, body in (
        ("get", "", None),
        ("patch", "", {"description": "mine now"}),
        ("put", "", {"source": USER_SIGNAL_CODE}),
        ("delete", "", None),
        ("get", "versions/", None),
        ("get", "versions/1/", None),
    ):
        response = getattr(other, method)(f"{URL}{sid}/{suffix}", body, format="json")
        assert response.status_code == 404, (method, suffix)
    assert other.get(URL).json()["count"] == 0
    # The same name is free for another user.
    assert other.post(URL, {"source": USER_SIGNAL_CODE}, format="json").status_code == 201
