"""The operations API on the embedded default (`manage.py serve`, no DATABASE_URL, no REDIS_URL):
the in-process worker and its queues are shown, beat-run jobs record their outcome, and what has no
meaning there (a Redis cache) is said, never a 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.core.test_embedded_mode import embedded_server, post_json  # noqa: F401 - the fixture
from tests.support.servers import ROOT

pytestmark = pytest.mark.slow


def _call(url: str, token: str, *, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_embedded_server_ops_api(embedded_server, tmp_path):  # noqa: F811 - the fixture
    tokens = post_json(
        f"{embedded_server}/api/v1/auth/register/", {"email": "ops@example.com", "password": "a-Long-pass-77"}
    )
    token = tokens["access"]
    assert _call(f"{embedded_server}/api/v1/ops/jobs/", token)[0] == 403  # not staff yet
    # The fixture's environment: the embedded default with its SQLite database under tmp_path.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_ENV"}}
    env.update(VAR_DIR=str(tmp_path))
    promote = "from apps.accounts.models import User; User.objects.filter(email='ops@example.com').update(is_staff=True)"
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", promote], cwd=ROOT, env=env, check=True, timeout=120
    )

    status, overview = _call(f"{embedded_server}/api/v1/ops/jobs/", token)
    assert status == 200, overview
    assert overview["mode"] == "embedded"
    assert [w["name"] for w in overview["workers"]["workers"]] == ["embedded@localhost"]
    assert "Embedded mode" in overview["workers"]["detail"]
    assert overview["queues"]["available"] is True
    assert set(overview["queues"]["queues"]) == {"default", "backtests", "bots"}

    status, cache = _call(f"{embedded_server}/api/v1/ops/cache/", token)
    assert status == 200 and cache["available"] is False and "embedded mode" in cache["detail"]
    status, cleared = _call(f"{embedded_server}/api/v1/ops/cache/clear/", token, body={"group": "prices"})
    assert status == 503 and cleared["error"]["code"] == "unavailable"

    # Beat (a thread of the server) sends the heartbeat every second; the in-process worker runs it
    # and its outcome is remembered in the process's cache.
    deadline = time.monotonic() + 30
    while True:
        status, schedules = _call(f"{embedded_server}/api/v1/ops/schedules/?page_size=100", token)
        assert status == 200, schedules
        heartbeat = next(row for row in schedules["results"] if row["name"] == "platform: heartbeat")
        if heartbeat["last_outcome"]:
            break
        assert time.monotonic() < deadline, heartbeat
        time.sleep(0.5)
    assert heartbeat["last_outcome"]["state"] == "SUCCESS"

    status, jobs = _call(f"{embedded_server}/api/v1/jobs/", token)
    assert status == 200 and jobs["count"] == 0
