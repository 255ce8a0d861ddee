"""``/health/ready/`` of a real daphne while the private PostgreSQL and Redis are stopped and started:
it names what is down and why (503), answers within its check deadline, and is ready again by
itself once the dependency is back."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.backtests.api_support import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def ready(fault_stack) -> tuple[int, dict, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"{fault_stack.base_url}/health/ready/", timeout=15) as response:
            status, body = response.status, json.load(response)
    except urllib.error.HTTPError as error:
        status, body = error.code, json.load(error)
    return status, body, time.monotonic() - started


def down(body: dict) -> set[str]:
    return {name for name, check in body["checks"].items() if not check["ok"]}


def test_readiness_names_what_is_down_with_the_reason_and_recovers_by_itself(fault_stack):
    status, body, _ = ready(fault_stack)
    assert (status, body["status"], down(body)) == (200, "ok", set()), body
    assert set(body["checks"]) == {"database", "redis", "channel_layer", "celery"}

    fault_stack.postgres.stop()
    status, body, took = ready(fault_stack)
    assert (status, body["status"], down(body)) == (503, "error", {"database"}), body
    assert body["checks"]["database"]["error"]  # the reason, e.g. the refused connection
    assert took < 6  # the check's deadline (3 s), not the pool's 5-10 s wait
    fault_stack.postgres.start()
    assert wait_for(lambda: ready(fault_stack)[0] == 200, timeout=20)

    fault_stack.redis.stop()
    status, body, took = ready(fault_stack)
    assert (status, body["status"]) == (503, "error"), body
    assert down(body) == {"redis", "channel_layer", "celery"}, body
    assert "onnect" in body["checks"]["redis"]["error"]  # ConnectionError: ... refused
    assert took < 6
    fault_stack.redis.start()
    # The worker reconnects to the broker by itself, the web process to the layer and cache.
    assert wait_for(lambda: ready(fault_stack)[0] == 200, timeout=30), ready(fault_stack)[1]
