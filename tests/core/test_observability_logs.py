"""Structured logs: request ids, user ids, task context, JSON lines, and no secrets.

The secrets tests run real flows (an exchange connection with keys, logins, a signal
webhook, a view that fails with secrets in its locals) with everything logged at DEBUG,
SQL included, through the project's own configured handler (its filters and a JSON
formatter), and assert that no secret appears anywhere in what was written.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.bots import services as bot_services
from apps.core.observability import context
from apps.core.observability.logs import REDACTED, JsonFormatter, PlainFormatter, redact_text
from apps.exchanges.models import ExchangeConnection
from tests.core.observability_urls import BOOM_KEY, BOOM_SECRET
from tests.exchanges.fake_binance_account import API_KEY, SECRET
from tests.factories import PASSWORD, BotFactory

pytestmark = pytest.mark.django_db


class LogCapture:
    """Everything the root's configured handler writes, as JSON lines."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def lines(self, logger: str) -> list[dict]:
        return [r for r in self.records if r["logger"] == logger]

    def assert_absent(self, *secrets: str) -> None:
        for secret in secrets:
            assert secret not in self.text, f"{secret!r} was logged:\n{self.text}"


@pytest.fixture
def logs():
    """Swap the configured console handler's stream (and format: JSON) for the test; log
    everything at DEBUG, SQL with its parameters included."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    ours = [h for h in handlers if any(type(f).__name__ == "RedactFilter" for f in h.filters)]
    assert ours, "the root logger has no handler with the redacting filter (LOGGING in settings)"
    handler = ours[0]
    capture = LogCapture()
    old_stream, old_formatter = handler.setStream(capture.stream), handler.formatter
    handler.setFormatter(JsonFormatter())
    root, sql, factories = (logging.getLogger(n) for n in ("", "django.db.backends", "factory"))
    levels = (root.level, sql.level, handler.level, factories.level)
    root.setLevel(logging.DEBUG)
    sql.setLevel(logging.DEBUG)
    # factory_boy writes the test users' password in its own debug lines: test set-up, not ours.
    factories.setLevel(logging.INFO)
    handler.setLevel(logging.DEBUG)
    debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True  # SQL and its parameters are logged, as with DEBUG on
    try:
        yield capture
    finally:
        connection.force_debug_cursor = debug_cursor
        root.setLevel(levels[0])
        sql.setLevel(levels[1])
        handler.setLevel(levels[2])
        factories.setLevel(levels[3])
        handler.setFormatter(old_formatter)
        handler.setStream(old_stream)


def test_every_line_is_one_json_object_with_the_context_fields(logs, client):
    response = client.get("/health/", HTTP_X_REQUEST_ID="probe-42")
    assert response["X-Request-ID"] == "probe-42"
    (line,) = [r for r in logs.lines("trading.access") if r["path"] == "/health/"]
    assert {"time", "level", "logger", "message", "request_id", "user_id", "task_id", "task_name"} <= set(
        line
    )
    assert (line["level"], line["request_id"], line["user_id"]) == ("INFO", "probe-42", None)
    assert (line["route"], line["status"], line["method"]) == ("core:health", 200, "GET")
    assert line["time"].endswith("+00:00") and line["duration_ms"] >= 0


@pytest.mark.parametrize("sent", ["", "has spaces", "x" * 65, "new\nline", "<script>"])
def test_a_missing_or_insane_request_id_is_replaced_by_a_new_one(client, sent):
    headers = {"HTTP_X_REQUEST_ID": sent} if sent else {}
    first = client.get("/health/", **headers)["X-Request-ID"]
    second = client.get("/health/", **headers)["X-Request-ID"]
    assert first != sent and len(first) == 32 and first != second


def test_a_jwt_user_is_on_the_lines_of_their_request(logs, user):
    # DRF authenticates the token inside the view; the line written after it knows the user.
    api = APIClient()
    tokens = api.post("/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}).json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api.get("/api/v1/auth/me/", HTTP_X_REQUEST_ID="me-1").status_code == 200
    (line,) = [r for r in logs.lines("trading.access") if r["request_id"] == "me-1"]
    assert line["user_id"] == user.pk


def test_a_session_user_is_on_the_lines_of_their_request(logs, client, user):
    client.force_login(user)
    assert client.get("/bots/", HTTP_X_REQUEST_ID="page-1").status_code == 200
    (line,) = [r for r in logs.lines("trading.access") if r["request_id"] == "page-1"]
    assert line["user_id"] == user.pk


def test_a_task_sent_during_a_request_carries_its_request_and_user(user):
    from apps.core.observability import celery_hooks

    headers: dict = {}
    token = context.bind(request_id="req-7", user_id=user.pk)
    try:
        celery_hooks.add_context_headers(headers=headers)
    finally:
        context.reset(token)
    assert headers[celery_hooks.HEADER_REQUEST_ID] == "req-7"
    assert headers[celery_hooks.HEADER_USER_ID] == user.pk
    assert headers[celery_hooks.HEADER_SENT_AT] > 0


def test_plain_format_is_one_readable_line_with_the_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.request_id, record.user_id, record.task_id, record.task_name = "r1", 5, None, None
    text = PlainFormatter().format(record)
    assert text.endswith(" INFO x [req=r1 user=5] hello world") and "\n" not in text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("password=hunter2hunter2 ok", "hunter2hunter2"),
        ("{'api_secret': 'abcDEF123456'}", "abcDEF123456"),
        ('{"apiKey": "abcDEF123456"}', "abcDEF123456"),
        ("passphrase: my-pass-phrase", "my-pass-phrase"),
        ("Authorization: Bearer abc.def.ghi-jkl", "abc.def.ghi-jkl"),
        ("sent eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjo1fQ.sig-nature_x there", "eyJhbGciOiJIUzI1NiJ9"),
        ("stored gAAAAABnU3xYq9bcdEFGhijkLMNopqrSTUvwxyz0123456789abc= in a row", "gAAAAABnU3xYq9bcd"),
        ("GET /webhook?token=tok-999888777", "tok-999888777"),
    ],
)
def test_redaction_masks_secret_named_fields_and_secret_looking_values(text, secret):
    redacted = redact_text(text)
    assert secret not in redacted and REDACTED in redacted


def test_redaction_leaves_ordinary_text_alone():
    text = "bot 12 ticked BTC/USDT at 1700000000000: 1 order(s), tokens of appreciation"
    assert redact_text(text) == text


def test_creating_an_exchange_connection_logs_no_key(logs, auth_client, user):
    body = {"exchange": "binance", "label": "Main", "api_key": API_KEY, "api_secret": SECRET}
    response = auth_client.post("/api/v1/exchanges/connections/", body, format="json")
    assert response.status_code == 201, response.content
    logging.getLogger("apps.exchanges").info("connection created", extra={"api_key": API_KEY, "body": body})
    stored = ExchangeConnection.objects.get(pk=response.json()["id"])
    # The keys were written to the database (and the SQL logged) as Fernet blobs: masked too.
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("SELECT api_secret FROM exchanges_exchangeconnection WHERE id = %s", [stored.pk])
        (blob,) = cursor.fetchone()
    assert blob.startswith("gAAAAA")
    sql = logs.lines("django.db.backends")
    assert any("exchanges_exchangeconnection" in r["message"] and REDACTED in r["message"] for r in sql)
    (access,) = [r for r in logs.lines("trading.access") if r["path"] == "/api/v1/exchanges/connections/"]
    assert access["user_id"] == user.pk
    logs.assert_absent(API_KEY, SECRET, blob, blob[:40])


def test_logins_log_no_password_and_no_token(logs, user):
    api = APIClient()
    bad = api.post("/api/v1/auth/token/", {"email": user.email, "password": "Wrong-Password-123"})
    assert bad.status_code == 401
    tokens = api.post("/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}).json()
    refreshed = api.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}).json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed['access']}")
    api.get("/api/v1/auth/me/")
    form = Client()
    form.post(reverse("accounts:login"), {"username": user.email, "password": PASSWORD})
    form.post(reverse("accounts:login"), {"username": user.email, "password": "Wrong-Password-123"})
    # Whatever a careless line would write: the request's headers and body.
    logging.getLogger("apps.accounts").warning(
        "login attempt %s",
        {"email": user.email, "password": PASSWORD},
        extra={"headers": {"Authorization": f"Bearer {tokens['access']}"}},
    )
    assert len(logs.lines("trading.access")) >= 6
    logs.assert_absent(
        PASSWORD,
        "Wrong-Password-123",
        tokens["access"],
        tokens["refresh"],
        refreshed["access"],
        refreshed["refresh"],
    )


def test_a_signal_webhook_logs_no_token(logs, user, api_client):
    bot = BotFactory(owner=user, source="webhook", strategy="", params={}, status="running", timeframe="1h")
    token = bot_services.bot_webhook_rotate(bot=bot)
    url = reverse("signals-api:receive", args=[token])
    api_client.post(url, {"action": "enter_long", "signal_id": "s-1"}, format="json")
    wrong = "x" * len(token)
    api_client.post(reverse("signals-api:receive", args=[wrong]), {"action": "exit"}, format="json")
    paths = [r["path"] for r in logs.lines("trading.access")]
    assert f"/api/v1/signals/{REDACTED}/" in paths, paths
    routes = {r["route"] for r in logs.lines("trading.access")}
    assert "signals-api:receive" in routes
    logs.assert_absent(token, token[:16], wrong)


@pytest.mark.urls("tests.core.observability_urls")
def test_an_exception_in_a_view_logs_no_secret_from_its_locals(logs):
    client = Client(raise_request_exception=False)
    response = client.get("/test-boom/", HTTP_X_REQUEST_ID="boom-1")
    assert response.status_code == 500
    errors = [r for r in logs.records if r["level"] == "ERROR"]
    assert errors and all(r["request_id"] == "boom-1" for r in errors), logs.text
    # The traceback is there (the error is findable), the secrets are not.
    assert any("RuntimeError" in (r.get("exc_info") or "") for r in errors)
    logs.assert_absent(BOOM_SECRET, BOOM_KEY)
