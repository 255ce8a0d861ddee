"""The first WebSocket connection to ``/ws/events/`` after Redis restarted is accepted: a real web server
on a private ``redis-server`` (tests/support/faults.py) that the test restarts, so the machine's
Redis, which other tests use, is never touched."""

from __future__ import annotations

import json
import shutil

import pytest
from rest_framework_simplejwt.tokens import AccessToken
from websockets.sync.client import connect

from tests.factories import UserFactory
from tests.support import faults, servers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("real_services")]


@pytest.fixture
def private_redis(settings, tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (apt-get install redis-server)")
    if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip(
            "needs REDIS_URL and DATABASE_URL (the web server on Redis and the test database); .ci/run sets them"
        )
    redis_server = faults.PrivateRedis(tmp_path)
    redis_server.start()
    try:
        yield redis_server
    finally:
        redis_server.stop()


def test_the_first_websocket_after_a_redis_restart_is_accepted_and_answers(private_redis, tmp_path):
    token = str(AccessToken.for_user(UserFactory()))
    env = {"REDIS_URL": private_redis.url()}
    with servers.asgi_server(log_path=tmp_path / "server.log", env=env) as base:
        url = base.replace("http://", "ws://") + f"/ws/events/?token={token}"

        def round_trip() -> list[str]:
            with connect(url, origin=base, open_timeout=10) as ws:
                connected = json.loads(ws.recv(timeout=10))["type"]
                ws.send(json.dumps({"type": "ping"}))
                return [connected, json.loads(ws.recv(timeout=10))["type"]]

        assert round_trip() == ["connected", "pong"]  # the server's pooled connections are in use
        private_redis.restart()
        # Its very first connection, not a reconnect: it failed once, on the layer's dead connection.
        assert round_trip() == ["connected", "pong"], (tmp_path / "server.log").read_text()[-3000:]
