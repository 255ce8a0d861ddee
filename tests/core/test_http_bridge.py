"""The ASGI-to-WSGI bridge (apps/core/http_bridge.py): one hop for an ordinary answer, the body
read first when small and lazily when large, streaming answers sent and closed from their thread.

The apps here are plain WSGI callables, the bridge's whole contract; Django behind it runs in
every real-server test (tests/support/servers.py serves config.asgi).
"""

from __future__ import annotations

import threading

import pytest

from apps.core import http_bridge
from apps.core.http_bridge import WSGIBridge
from tests.support import aio


def scope(method="GET", headers=(), path="/p"):
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"a=1",
        "http_version": "1.1",
        "headers": list(headers),
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5555),
    }


def serve(app, request_scope, body_messages=()):
    """Run the bridge for one request; (messages sent, messages the app's reads took)."""
    incoming = list(body_messages)
    sent = []
    taken = []

    async def receive():
        message = incoming.pop(0) if incoming else {"type": "http.disconnect"}
        taken.append(message)
        return message

    async def send(message):
        sent.append(message)

    aio.run(WSGIBridge(app, threads=2)(request_scope, receive, send))
    return sent, taken


class Recorder:
    """A WSGI app that records what it saw and answers with ``chunks`` (streaming when asked)."""

    def __init__(self, chunks=(b"hello",), streaming=False):
        self.chunks = list(chunks)
        self.streaming = streaming
        self.seen = {}

    def __call__(self, environ, start_response):
        self.seen["thread"] = threading.get_ident()
        self.seen["body"] = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.seen["environ"] = environ
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Thing", "1")])
        return Answer(self, self.chunks, self.streaming)


class Answer:
    def __init__(self, app, chunks, streaming):
        self.app, self.chunks, self.streaming = app, chunks, streaming

    def __iter__(self):
        for chunk in self.chunks:
            self.app.seen.setdefault("chunk_threads", set()).add(threading.get_ident())
            yield chunk

    def close(self):
        self.app.seen["closed_in"] = threading.get_ident()


def test_an_ordinary_answer_is_sent_whole_once_the_thread_is_done():
    app = Recorder(chunks=[b"he", b"llo"])
    sent, _ = serve(app, scope())
    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"text/plain"), (b"x-thing", b"1")],
        },
        {"type": "http.response.body", "body": b"hello"},
    ]
    assert app.seen["closed_in"] == app.seen["thread"] != threading.get_ident()
    environ = app.seen["environ"]
    assert (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"]) == ("GET", "/p", "a=1")
    assert app.seen["body"] == b""


def test_a_small_declared_body_is_read_before_the_app_runs_in_every_piece():
    app = Recorder()
    pieces = [
        {"type": "http.request", "body": b'{"a": ', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    ]
    sent, taken = serve(app, scope("POST", [(b"content-length", b"8")]), pieces)
    assert app.seen["body"] == b'{"a": 1}'
    assert taken == pieces
    assert sent[0]["status"] == 201


def test_a_body_over_the_buffer_is_read_lazily_only_as_far_as_the_app_reads(monkeypatch):
    monkeypatch.setattr(http_bridge, "BUFFERED_BODY_MAX", 4)

    def reads_nothing(environ, start_response):
        start_response("413 Payload Too Large", [])
        return [b""]

    pieces = [{"type": "http.request", "body": b"x" * 10, "more_body": True}] * 3
    sent, taken = serve(reads_nothing, scope("POST", [(b"content-length", b"30")]), pieces)
    assert taken == []  # nothing held in memory for an answer that did not need the body
    assert sent[0]["status"] == 413

    app = Recorder()
    sent, taken = serve(app, scope("POST", [(b"content-length", b"30")]), pieces)
    assert app.seen["body"] == b"x" * 30
    assert sent[0]["status"] == 201


def test_a_chunked_upload_is_read_lazily():
    app = Recorder()
    pieces = [{"type": "http.request", "body": b"abc", "more_body": False}]
    sent, _ = serve(app, scope("POST", [(b"transfer-encoding", b"chunked")]), pieces)
    assert sent[0]["status"] == 201  # no declared length: Django reads no body (CONTENT_LENGTH 0)


def test_a_client_gone_before_its_body_arrived_never_reaches_the_app():
    app = Recorder()
    sent, _ = serve(app, scope("POST", [(b"content-length", b"8")]), [{"type": "http.disconnect"}])
    assert sent == [] and app.seen == {}


def test_a_streaming_answer_is_sent_chunk_by_chunk_and_closed_from_the_thread_that_served_it():
    app = Recorder(chunks=[b"a,b\n", b"", b"1,2\n"], streaming=True)
    sent, _ = serve(app, scope())
    assert [m["type"] for m in sent] == ["http.response.start"] + ["http.response.body"] * 3
    assert [(m["body"], m.get("more_body", False)) for m in sent[1:]] == [
        (b"a,b\n", True),
        (b"1,2\n", True),
        (b"", False),
    ]
    # Django's close() returns the request's database connection: the thread's own.
    assert app.seen["chunk_threads"] == {app.seen["thread"]} == {app.seen["closed_in"]}


def test_an_app_that_fails_still_closes_its_answer_and_the_error_reaches_the_server():
    class Broken(Answer):
        def __iter__(self):
            raise RuntimeError("mid-answer")

    def app(environ, start_response):
        start_response("200 OK", [])
        return answer

    answer = Broken(Recorder(), [], streaming=False)
    with pytest.raises(RuntimeError, match="mid-answer"):
        serve(app, scope())
    assert "closed_in" in answer.app.seen


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@pytest.mark.xdist_group("real_services")
def test_django_through_the_real_server_json_bodies_streamed_csv_files_and_a_body_too_large(tmp_path):
    import requests
    from django.conf import settings
    from rest_framework_simplejwt.tokens import AccessToken

    from tests.factories import UserFactory
    from tests.support import servers

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
        pytest.skip("needs DATABASE_URL (PostgreSQL) and REDIS_URL; .ci/run sets them")
    user = UserFactory()
    auth = {"Authorization": f"Bearer {AccessToken.for_user(user)}"}
    # DEBUG off, as deployed: Django answers its own refusals (the body too large) with handler400.
    with servers.asgi_server(log_path=tmp_path / "server.log", env={"DJANGO_DEBUG": "false"}) as base:
        # A JSON body, read before the view runs; the answer reflects it.
        response = requests.patch(
            f"{base}/api/v1/auth/me/", json={"display_name": "Bridge Trader"}, headers=auth, timeout=10
        )
        assert response.status_code == 200, response.text
        assert response.json()["display_name"] == "Bridge Trader"
        # A streaming answer (StreamingHttpResponse): every line arrives.
        response = requests.get(f"{base}/api/v1/portfolio/trades.csv", headers=auth, timeout=10)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
        assert response.text.splitlines()[0].startswith("account,symbol,side")
        # A static file (WhiteNoise's file answer is streamed too).
        response = requests.get(f"{base}/static/js/format.js", timeout=10)
        assert response.status_code == 200 and "Format" in response.text
        # Over the buffer: read lazily, and Django's own limit answers with the error body.
        big = b'{"display_name": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + b'"}'
        response = requests.patch(
            f"{base}/api/v1/auth/me/",
            data=big,
            headers={**auth, "Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "request_too_large"
        # The server is still fine afterwards.
        assert requests.get(f"{base}/api/v1/auth/me/", headers=auth, timeout=10).status_code == 200
