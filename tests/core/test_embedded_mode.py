"""The embedded default: no DATABASE_URL, no REDIS_URL. `manage.py serve` alone runs the web
server, a thread-pool Celery worker and beat, and events still reach the browser's socket."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
import websockets

from tests.support import aio
from tests.support.servers import ROOT, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_ENV"}}
    env.update(VAR_DIR=str(tmp_path), HEARTBEAT_SECONDS="1", PYTHONUNBUFFERED="1")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=180
    )
    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/health/", timeout=1)
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_embedded_server_runs_jobs_in_process_and_pushes_events(embedded_server):
    with urllib.request.urlopen(f"{embedded_server}/health/ready/", timeout=10) as response:
        report = json.loads(response.read())
    assert report["status"] == "ok"
    assert report["checks"]["database"]["detail"] == "sqlite"
    assert "redis" not in report["checks"]

    tokens = post_json(
        f"{embedded_server}/api/v1/auth/register/",
        {"email": "embedded@example.com", "password": "a-Long-pass-77"},
    )
    ws_url = embedded_server.replace("http", "ws") + f"/ws/events/?token={tokens['access']}"

    async def scenario():
        async with websockets.connect(ws_url, origin="http://127.0.0.1") as ws:

            async def first(kind):
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"] == kind:
                        return event

            await asyncio.wait_for(first("connected"), 10)
            # Beat (in-process) schedules the heartbeat, the thread-pool worker runs it,
            # and the in-memory channel layer carries it to this socket.
            return await asyncio.wait_for(first("heartbeat"), 20)

    assert aio.run(scenario())["payload"]["server_time"]
