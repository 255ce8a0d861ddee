"""A second user can neither read, change, nor learn of the first user's objects.

Every API route comes from the URL resolver (a route missing from the OpenAPI schema
fails here), every live event type from the code that publishes it; nothing is listed by
hand except the path-parameter table in ``tests/support/owned.py``, which fails loudly
for a new route until the route is added there. Alice and Bob each own one of
everything; Bob then tries every operation on Alice's objects:

- an operation on one of her objects answers exactly what it answers for an object that
  does not exist (404, never 403: no answer tells that it exists) and changes nothing;
- no list or summary Bob reads names her objects or carries her data;
- the references to objects a request may carry (a bot in a query, an account in a body)
  are refused for hers the same way;
- Bob's WebSocket receives none of her events, of every type the code publishes.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.db import connections, transaction
from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.support import aio
from tests.support.owned import (
    PATH_OBJECTS,
    SHARED_OBJECTS,
    admin_only,
    object_for_path,
    path_values,
    seed_owned_objects,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
MISSING_ID = 987_654_321

# Paths whose parameter is not an object of a user but a credential: the webhook's path
# token *is* the authentication (anyone holding it may post a signal; rotated by the owner).
CREDENTIAL_PATHS = {"/api/v1/signals/{token}/"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def schema_operations(schema) -> list[tuple[str, str]]:
    return sorted((method.upper(), path) for path, methods in schema["paths"].items() for method in methods)


def _spectacular_path(path: str) -> str:
    # The enumerator's "{pk}" is the schema's "{id}" (drf-spectacular names primary keys "id").
    return path.replace("{pk}", "{id}")


def test_every_api_route_is_documented_in_the_schema(schema):
    """An API route outside the schema would escape the fuzzer and the checks below."""
    documented = set(schema_operations(schema))
    routes = {
        (method.upper(), _spectacular_path(path))
        for path, _regex, method, _view in EndpointEnumerator().get_api_endpoints()
        if path.startswith("/api/v1/") and path != "/api/v1/"
    }
    assert routes, "the enumerator found no API route"
    assert sorted(routes - documented) == []


@pytest.fixture
def alice_and_bob():
    alice = seed_owned_objects(UserFactory(display_name="Alice"))
    bob = seed_owned_objects(UserFactory(display_name="Bob"))
    return alice, bob


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def fill_path(path: str, values: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)


def fingerprint(objects: dict[str, Any]) -> dict[str, Any]:
    """Every owned row of one user, as stored, and how many rows the user owns per model."""
    from apps.bots.models import Bot
    from apps.orders.models import Order, Position

    user = objects["user"]
    rows = {
        key: type(value).objects.filter(pk=value.pk).values().first()
        for key, value in objects.items()
        if hasattr(value, "pk") and key not in SHARED_OBJECTS
    }
    counts = {
        "bots": Bot.objects.filter(owner=user).count(),
        "orders": Order.objects.filter(owner=user).count(),
        "positions": Position.objects.filter(owner=user).count(),
    }
    return {"rows": rows, "counts": counts}


def _answer(response) -> tuple[int, str | None]:
    try:
        body = response.json()
    except (ValueError, TypeError):
        return response.status_code, None
    error = body.get("error") if isinstance(body, dict) else None
    return response.status_code, error.get("code") if isinstance(error, dict) else None


def _call(client: APIClient, method: str, url: str):
    if method in ("GET", "DELETE"):
        return client.generic(method, url)
    return client.generic(method, url, "{}", content_type="application/json")


def test_another_users_object_answers_as_if_it_did_not_exist_and_stays_unchanged(schema, alice_and_bob):
    alice, bob = alice_and_bob
    as_alice, as_bob = client_for(alice["user"]), client_for(bob["user"])
    problems: list[str] = []
    checked = 0
    for method, path in schema_operations(schema):
        if "{" not in path or path in CREDENTIAL_PATHS:
            continue
        if admin_only(path):  # a role, not an owner: no non-staff user may use them at all
            response = _call(as_bob, method, fill_path(path, {"id": MISSING_ID}))
            if response.status_code != 403:
                problems.append(f"{method} {path}: {response.status_code} for a non-staff user")
            continue
        parameters = object_for_path(path)
        if all(key in SHARED_OBJECTS for key, _attribute in parameters.values()):
            continue  # the market catalog is everybody's
        hers = fill_path(path, path_values(path, alice))
        missing = fill_path(path, dict.fromkeys(parameters, MISSING_ID))
        before = fingerprint(alice)
        with transaction.atomic():
            answer, absent = _answer(_call(as_bob, method, hers)), _answer(_call(as_bob, method, missing))
            changed = fingerprint(alice) != before
            transaction.set_rollback(True)
        checked += 1
        if answer != absent or answer[0] != 404:
            problems.append(f"{method} {path}: {answer} for hers, {absent} for a missing one")
        if changed:
            problems.append(f"{method} {path}: changed her objects")
        if method == "GET":  # the ids are right: she herself reads them
            with transaction.atomic():
                status = as_alice.get(hers).status_code
                transaction.set_rollback(True)
            if status == 404:
                problems.append(f"GET {path}: 404 for Alice herself (the test's ids are wrong)")
    assert checked > 60
    assert problems == []


def _markers(objects: dict[str, Any]) -> list[str]:
    """Strings only Alice's data contains."""
    return [
        objects["user"].email,
        objects["bot"].name,
        objects["strategy"].name,
        objects["connection"].label,
        objects["alert"].key,
        objects["webhook_token"],
    ]


def _listed_ids(body: Any) -> set[int]:
    results = body.get("results") if isinstance(body, dict) else body
    return {
        item["id"] for item in results or [] if isinstance(item, dict) and isinstance(item.get("id"), int)
    }


def test_bobs_lists_and_summaries_never_show_alices_objects(schema, alice_and_bob):
    alice, bob = alice_and_bob
    as_bob = client_for(bob["user"])
    markers = _markers(alice)
    own_ids = {
        path[: -len("{id}/")]: params["id"][0]
        for path, params in PATH_OBJECTS.items()
        if path.endswith("/{id}/")
    }
    problems: list[str] = []
    read = 0
    for method, path in schema_operations(schema):
        if method != "GET" or "{" in path:
            continue
        response = as_bob.get(path)
        read += 1
        content = b"".join(response.streaming_content) if response.streaming else response.content
        text = content.decode(errors="replace")
        problems += [f"GET {path} shows {marker!r}" for marker in markers if marker in text]
        key = own_ids.get(path)
        if key and key not in SHARED_OBJECTS and response.status_code == 200:
            listed = _listed_ids(json.loads(content))
            if alice[key].pk in listed and alice[key].pk != bob[key].pk:
                problems.append(f"GET {path} lists Alice's {key} {alice[key].pk}")
            if bob[key].pk not in listed:
                problems.append(f"GET {path} does not list Bob's own {key} (the check is blind)")
    assert read > 40
    assert problems == []


def references(alice: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Requests that name one of Alice's objects in a query or a body rather than the path."""
    bot, account, run = alice["bot"].pk, alice["paper_account"].pk, alice["backtest"].pk
    connection, strategy = alice["connection"].pk, alice["strategy"].pk
    return [
        ("GET", f"/api/v1/exchanges/paper/?bot_id={bot}", None),
        ("POST", "/api/v1/exchanges/paper/reset/", {"bot_id": bot}),
        ("GET", f"/api/v1/portfolio/summary/?account=paper:{account}", None),
        ("GET", f"/api/v1/portfolio/balances/?account=live:{connection}", None),
        ("GET", f"/api/v1/backtests/compare/?ids={run}", None),
        (
            "POST",
            "/api/v1/orders/",
            {
                "paper_account": account,
                "symbol": "BTC/USDT",
                "side": "buy",
                "type": "market",
                "amount": "0.001",
            },
        ),
        ("POST", "/api/v1/risk/limits/", {"kind": "open_orders", "value": "5", "bot": bot}),
        ("POST", "/api/v1/risk/limits/", {"kind": "open_orders", "value": "5", "paper_account": account}),
        (
            "POST",
            "/api/v1/backtests/",
            {
                "strategy": "seeded",
                "strategy_id": strategy,
                "exchange": "binance",
                "symbol": "BTC/USDT",
                "timeframe": "1h",
                "start": "2024-01-01T00:00:00Z",
                "end": "2024-02-01T00:00:00Z",
            },
        ),
    ]


def test_references_to_alices_objects_in_queries_and_bodies_are_refused(alice_and_bob):
    alice, bob = alice_and_bob
    as_bob = client_for(bob["user"])
    problems: list[str] = []
    for method, url, body in references(alice):
        before = fingerprint(alice)
        with transaction.atomic():
            if body is None:
                response = as_bob.generic(method, url)
            else:
                response = as_bob.generic(method, url, json.dumps(body), content_type="application/json")
            changed = fingerprint(alice) != before
            transaction.set_rollback(True)
        text = response.content.decode(errors="replace")
        if response.status_code not in (400, 404):
            problems.append(f"{method} {url}: {response.status_code} {text[:200]}")
        if changed:
            problems.append(f"{method} {url}: changed her objects")
        problems += [f"{method} {url} shows {m!r}" for m in _markers(alice) if m in text]
    assert problems == []


# ----------------------------------------------------------------------- live events
def published_event_types() -> dict[str, str]:
    """Every event type the code publishes to a user: ``publish_event(user, "type", ...)`` calls
    (a literal, or a module constant) and the ``status_event`` of each job model -> where."""
    found: dict[str, str] = {}
    for file in sorted((ROOT / "apps").rglob("*.py")):
        tree = ast.parse(file.read_text(), filename=str(file))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        where = str(file.relative_to(ROOT))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "publish_event"
                and node.args[1:]
            ):
                kind = node.args[1]
                if isinstance(kind, ast.Constant):
                    found[kind.value] = where
                elif isinstance(kind, ast.Name) and kind.id in constants:
                    found[constants[kind.id]] = where
            if isinstance(node, ast.FunctionDef):  # _publish_order(order, event="order.updated")
                for default in node.args.defaults + node.args.kw_defaults:
                    if isinstance(default, ast.Constant) and str(default.value).startswith("order."):
                        found[default.value] = where
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_publish_order":
                for arg in node.args[1:]:
                    if isinstance(arg, ast.Constant):
                        found[arg.value] = where
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "status_event" for t in node.targets
            ):
                found[node.value.value] = where
    return found


def test_the_event_type_list_is_complete():
    types = published_event_types()
    for expected in ("order.created", "fill.created", "paper.fill", "backtest.status", "bot.replay", "price"):
        assert expected in types, (expected, sorted(types))


@pytest.mark.django_db(transaction=True)
def test_bobs_websocket_receives_none_of_alices_events():
    from channels.testing import WebsocketCommunicator
    from rest_framework_simplejwt.tokens import AccessToken

    from apps.core.events import publish_event
    from config.asgi import application

    alice, bob = UserFactory(), UserFactory()
    # heartbeat: beat also broadcasts it to everybody (server time only), so it is not counted.
    types = sorted(set(published_event_types()) - {"heartbeat"})

    async def connect(user) -> WebsocketCommunicator:
        socket = WebsocketCommunicator(
            application,
            f"/ws/events/?token={AccessToken.for_user(user)}",
            headers=[(b"origin", b"http://localhost")],
        )
        connected, _ = await socket.connect(timeout=10)
        assert connected
        assert (await socket.receive_json_from(timeout=10))["type"] == "connected"
        return socket

    async def drain(socket, until: str) -> list[str]:
        received = []
        while True:
            event = await socket.receive_json_from(timeout=10)
            if event["type"] == until:
                return received
            if event["type"] != "heartbeat":  # a broadcast to everybody, no user's data
                received.append(event["type"])

    async def scenario():
        alices, bobs = await connect(alice), await connect(bob)
        try:
            from asgiref.sync import sync_to_async

            for event_type in types:
                await sync_to_async(publish_event)(alice.pk, event_type, {"id": 1, "owner": alice.pk})
            await sync_to_async(publish_event)(alice.pk, "test.end", {})
            await sync_to_async(publish_event)(bob.pk, "test.end", {})
            return await drain(alices, "test.end"), await drain(bobs, "test.end")
        finally:
            await alices.disconnect()
            await bobs.disconnect()

    hers, his = aio.run(scenario())
    assert sorted(hers) == types  # she gets every one of them: the check is not blind
    assert his == []


def test_every_publish_names_the_owner_of_what_it_is_about():
    """The routing above is per user id; each call site must pass the id of the object's owner
    (``x.owner_id``, ``x.user_id``, ``user.pk``, ``owner_id``), or None for a broadcast."""
    allowed = re.compile(r"^([\w.]+\.)?(owner_id|user_id|owner_user_id)$|^user\.pk$")
    problems = []
    for file in sorted((ROOT / "apps").rglob("*.py")):
        tree = ast.parse(file.read_text(), filename=str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "publish_event" and node.args:
                who = ast.unparse(node.args[0])
                if not allowed.match(who):
                    problems.append(f"{file.relative_to(ROOT)}:{node.lineno} publish_event({who}, ...)")
    assert problems == []


@pytest.mark.django_db(transaction=True)
def test_alices_real_actions_reach_her_socket_and_never_bobs():
    """The same through the code that publishes: Alice acts through the API (acknowledges an
    alert, starts and stops her bot, presses and releases the kill switch);
    her socket hears of it, Bob's hears nothing."""
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from rest_framework_simplejwt.tokens import AccessToken

    from apps.core.events import publish_event
    from config.asgi import application

    alice = seed_owned_objects(UserFactory())
    bob = UserFactory()
    as_alice = client_for(alice["user"])

    def act() -> list[int]:
        try:
            return _act()
        finally:
            connections.close_all()  # this thread's connection, or the test database could not be dropped

    def _act() -> list[int]:
        return [
            as_alice.post(f"/api/v1/risk/alerts/{alice['alert'].pk}/acknowledge/").status_code,
            as_alice.post(f"/api/v1/bots/{alice['bot'].pk}/start/").status_code,
            as_alice.post(f"/api/v1/bots/{alice['bot'].pk}/stop/").status_code,
            as_alice.post("/api/v1/risk/kill-switch/engage/", {"confirm": True}, format="json").status_code,
            as_alice.post("/api/v1/risk/kill-switch/release/", {"confirm": True}, format="json").status_code,
        ]

    async def connect(user) -> WebsocketCommunicator:
        socket = WebsocketCommunicator(
            application,
            f"/ws/events/?token={AccessToken.for_user(user)}",
            headers=[(b"origin", b"http://localhost")],
        )
        connected, _ = await socket.connect(timeout=10)
        assert connected
        assert (await socket.receive_json_from(timeout=10))["type"] == "connected"
        return socket

    async def drain(socket) -> list[str]:
        received = []
        while (event := await socket.receive_json_from(timeout=10))["type"] != "test.end":
            if event["type"] != "heartbeat":
                received.append(event["type"])
        return received

    async def scenario():
        hers, his = await connect(alice["user"]), await connect(bob)
        try:
            statuses = await sync_to_async(act)()
            for user in (alice["user"], bob):
                await sync_to_async(publish_event)(user.pk, "test.end", {})
            return statuses, await drain(hers), await drain(his)
        finally:
            await hers.disconnect()
            await his.disconnect()

    statuses, hers, his = aio.run(scenario())
    assert all(status < 500 for status in statuses), statuses
    assert {"risk.alert.acknowledged", "kill_switch.updated"} <= set(hers), hers
    assert his == []
