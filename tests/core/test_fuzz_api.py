"""Schemathesis fuzzes every operation of the OpenAPI schema, authenticated, in-process.

For each operation of ``/api/schema/`` it generates valid and invalid requests (path,
query, body) for a user who owns one object of every kind (``tests/support/owned.py``: a
paper account, bots, an order, a backtest with results, a strategy, ...), half of them
naming those objects, sends them to the WSGI application (Binance's API is the one
stand-in) and checks every answer: no 5xx, a documented status code, the documented
content type and headers, and a body that matches the documented schema.

Each example runs in a savepoint that is rolled back, so every one starts from the same
seeded objects (a DELETE does not starve the examples after it) and no task or event is
sent (on-commit callbacks never run). ``FUZZ_MAX_EXAMPLES`` (default 10 per operation)
raises the budget; ``FUZZ_SEED`` picks another deterministic run (default: derandomized).
"""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.exchanges.fake_binance_account import API_KEY, SECRET, BinanceAccount
from tests.factories import UserFactory
from tests.support.api import assert_error
from tests.support.fake_exchange import FakeBinance
from tests.support.owned import admin_only, path_values, seed_owned_objects

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# A request that breaks the schema must be refused (what found the empty PUT body accepted:
# test_every_put_with_an_empty_body_... below). Checked on JSON writes only: a GET list reads a blank
# filter (``?exchange=``) as no filter (django-filter, by design), and the in-process transport
# (werkzeug) mangles negative form bodies (it drops a field whose value is "" and sends a null body
# as the text "None"), so the server never sees the invalid value those cases claim to send.
REJECTS_INVALID = [*CHECKS, negative_data_rejection]

# Operations not fuzzed, each with its reason. Keep this short.
SKIPPED: dict[str, str] = {}


@pytest.fixture(scope="module")
def wsgi_app():
    from config.wsgi import application

    return application


@pytest.fixture(autouse=True)
def in_process_requests():
    # As Django's test client does: the application runs in the test's thread and transaction,
    # so the per-request connection clean-up must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def fuzz_schema(wsgi_app, django_db_blocker):
    # The schema as /api/schema/ serves it. Loaded once, before any test's transaction: the
    # request's connection clean-up may touch the database.
    with django_db_blocker.unblock():
        return schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)


@pytest.fixture
def fake_exchange(settings):
    """The one stand-in: Binance's API, with an account for the seeded connection's key."""
    with FakeBinance() as server:
        settings.MARKETDATA_API_OVERRIDES = server.overrides()
        BinanceAccount(server).install()
        yield server


@pytest.fixture
def seeded(shared_data_dir, fake_exchange):
    """A user owning one of everything the API has a detail page for."""
    objects = seed_owned_objects(UserFactory(), shared_data_dir=shared_data_dir)
    connection = objects["connection"]
    connection.api_key, connection.api_secret = API_KEY, SECRET
    connection.save()
    return objects


def operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def _strategy(operation, own: dict):
    """Valid and invalid requests; with ``own``, as many again aimed at the user's own objects."""
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    strategies = [operation.as_strategy(mode) for mode in modes]
    if own:
        strategies += [operation.as_strategy(mode, path_parameters=own) for mode in modes]
    return st.one_of(strategies)


def _fuzz(operation, strategy, headers: dict, statuses: set[int]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize="FUZZ_SEED" not in os.environ,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    def run(case):
        with transaction.atomic():
            try:
                response = case.call(headers=headers)
                statuses.add(response.status_code)
                json_write = case.method.upper() != "GET" and case.media_type == "application/json"
                checks = REJECTS_INVALID if json_write else CHECKS
                case.validate_response(response, checks=checks, headers=headers)
            finally:
                transaction.set_rollback(True)

    if "FUZZ_SEED" in os.environ:
        run = seed(int(os.environ["FUZZ_SEED"]))(run)
    run()


# One test for the whole schema: pytest-timeout's 300 s per test would cut a bigger budget short
# (~10 s per operation-example batch of 10 on a loaded 2-core machine; 147 operations).
@pytest.mark.timeout(max(900, MAX_EXAMPLES * 90))
def test_every_operation_survives_fuzzing(fuzz_schema, seeded):
    headers = _bearer(seeded["user"])
    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    for operation in operations(fuzz_schema):
        label = f"{operation.method.upper()} {operation.path}"
        if label in SKIPPED:
            continue
        cache.clear()  # the throttle counters of the operation before
        own = path_values(operation.path, seeded) if operation.path_parameters else {}
        statuses[label] = set()
        try:
            _fuzz(operation, _strategy(operation, own), headers, statuses[label])
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{label}: " + re.sub(r"\n{3,}", "\n\n", str(exc))[:2000])
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)

    # The fuzzing reached the API's logic, not only its guards: the user is authenticated
    # everywhere but on the token endpoints (whose 401 is a wrong password or token), and
    # nearly every operation answered a success at least once.
    assert len(statuses) > 100
    unauthenticated = [label for label, seen in statuses.items() if 401 in seen and "/auth/" not in label]
    assert unauthenticated == []
    # Admin-only operations answer this (non-staff) user a documented 403: not counted.
    statuses = {label: seen for label, seen in statuses.items() if not admin_only(label.split(" ", 1)[1])}
    succeeded = [label for label, seen in statuses.items() if any(200 <= code < 300 for code in seen)]
    if MAX_EXAMPLES < 10:
        return  # too few examples to expect a success from most operations
    # (Some need a combination of query parameters random values rarely hit: 111 of 147 at 10 examples.)
    assert len(succeeded) >= 0.7 * len(statuses), sorted(set(statuses) - set(succeeded))


# ---------------------------------------------------------------- what fuzzing found
# Each defect the fuzzer found, fixed, and pinned by one exact request checked the same way.


def _checked(schema, method: str, path: str, headers: dict | None = None, **case):
    """One exact request through the schema's operation, checked like a fuzzed one; its response."""
    operation = schema[path][method]
    example = operation.Case(**case)
    response = example.call(headers=headers)
    example.validate_response(response, checks=CHECKS, headers=headers)
    return response


def _bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}


def test_register_answers_the_documented_user_and_token_pair(fuzz_schema):
    body = {"email": "new-trader@example.com", "password": "a-Long-passphrase-9"}
    response = _checked(
        fuzz_schema, "POST", "/api/v1/auth/register/", body=body, media_type="application/json"
    )
    assert response.status_code == 201
    assert set(response.json()) == {"user", "refresh", "access"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_write_to_a_path_that_matches_no_route_is_the_json_404_not_a_csrf_page(user, method):
    # A negative id matches no <int:pk> route: the /api/ catch-all answers, which a CSRF
    # check turned into Django's HTML 403 page for every unsafe method.
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.generic(method, "/api/v1/backtests/-5/", "{}", content_type="application/json")
    assert_error(response, 404, "not_found")


def _required_body_fields(schema: dict, operation: dict) -> set[str]:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in body:
        body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return set(body.get("required", []))


@pytest.mark.parametrize("body_format", ["json", "multipart", "urlencoded"])
def test_every_put_with_an_empty_body_is_a_400_naming_each_required_field(fuzz_schema, user, body_format):
    # A PUT is a full update: its body has required fields, and an empty body (JSON or a form,
    # where DRF used to read a missing boolean as false) is refused naming each of them. Found by
    # schemathesis' negative_data_rejection: PUT subscriptions/{id}/ took {} and changed nothing.
    raw = fuzz_schema.raw_schema
    objects = seed_owned_objects(user)
    client = APIClient()
    client.force_authenticate(user)
    puts = {path: ops["put"] for path, ops in raw["paths"].items() if "put" in ops}
    assert len(puts) >= 5, sorted(puts)
    for path, operation in puts.items():
        required = _required_body_fields(raw, operation)
        assert required, f"PUT {path} documents no required field"
        url = path.format(**path_values(path, objects)) if "{" in path else path
        if body_format == "urlencoded":
            response = client.generic("PUT", url, "", content_type="application/x-www-form-urlencoded")
        else:
            response = client.put(url, {}, format=body_format)
        error = assert_error(response, 400, "invalid", fields=required)
        assert set(error["fields"]) == required, (path, error)


def test_cash_flows_answer_the_documented_page(fuzz_schema, user):
    response = _checked(fuzz_schema, "GET", "/api/v1/portfolio/cash-flows/", _bearer(user))
    assert set(response.json()) == {"count", "next", "previous", "results"}


def test_a_channel_without_url_or_email_matches_its_schema(fuzz_schema, user):
    from apps.risk.models import NotificationChannel

    channel = NotificationChannel.objects.create(
        owner=user, kind="telegram", name="t", events=["fill"], chat_id="42", secret="123:abc"
    )
    response = _checked(
        fuzz_schema, "GET", "/api/v1/risk/notification-channels/{id}/", _bearer(user),
        path_parameters={"id": channel.pk},
    )  # fmt: skip
    assert response.json()["url"] == "" and response.json()["email"] == ""


def test_a_signal_with_nul_and_lone_surrogates_is_logged_and_refused_not_a_500(api_client, user):
    from apps.bots.models import BotSignal
    from apps.bots.services.signals import bot_webhook_rotate
    from tests.factories import BotFactory

    bot = BotFactory(owner=user, source="webhook", strategy="", params={}, status="running")
    token = bot_webhook_rotate(bot=bot)
    body = '{"action": "enter\\u0000", "note\\u0000": "\\ud800", "size": "1"}'
    response = api_client.post(f"/api/v1/signals/{token}/", body, content_type="application/json")
    assert_error(response, 400, fields="action")
    signal = BotSignal.objects.get(bot=bot)
    assert signal.payload["note\ufffd"] == "?" and "\x00" not in signal.reason


def test_login_documents_and_answers_the_token_pair(fuzz_schema, user, password):
    # Random credentials never log in, so the fuzzer saw only 400/401 here: the 200 had no body
    # in the schema at all (drf-spectacular found only the serializer's write-only fields).
    documented = fuzz_schema.raw_schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]["200"]
    assert "content" in documented
    body = {"email": user.email, "password": password}
    response = _checked(fuzz_schema, "POST", "/api/v1/auth/token/", body=body, media_type="application/json")
    assert response.status_code == 200 and set(response.json()) == {"access", "refresh"}
