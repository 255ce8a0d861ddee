"""Every API operation that takes a body answers bad JSON with a 4xx error body, never a 500."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from apps.core.api.parsers import MAX_DEPTH, json_depth_exceeds

pytestmark = pytest.mark.django_db

BODY_METHODS = ("post", "put", "patch")


def body_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method, re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in schema["paths"].items()
        for method in operations
        if method in BODY_METHODS
    )


OPERATIONS = body_operations()


@pytest.fixture
def auth_client(user) -> APIClient:
    # A staff user, so the staff-only operations endpoints (/api/v1/ops/) parse their bodies too
    # instead of refusing the user first; every other endpoint treats staff as any user.
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_every_body_operation_is_covered():
    assert len(OPERATIONS) > 10 and ("post", "/api/v1/auth/register/") in OPERATIONS


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("body", ["[" * 5000, "{" * 5000, '{"a":' * 100 + "1" + "}" * 100])
def test_deeply_nested_json_is_a_400_parse_error(auth_client, method, path, body):
    response = getattr(auth_client, method)(path, body, content_type="application/json")
    assert response.status_code in (400, 404, 405), (response.status_code, response.content[:300])
    if response.status_code == 400:
        error = response.json()["error"]
        assert error["code"] == "parse_error" and error["message"]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("body", ["5", "null", "[]", '"text"', "true"])
def test_a_non_object_json_body_is_a_4xx_with_the_error_body(auth_client, method, path, body):
    response = getattr(auth_client, method)(path, body, content_type="application/json")
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if response.content:
        assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_depth_check_is_exact_and_iterative():
    nested: object = 1
    for _ in range(MAX_DEPTH):
        nested = [nested]
    assert not json_depth_exceeds(nested, MAX_DEPTH)
    assert json_depth_exceeds([nested], MAX_DEPTH)
    assert not json_depth_exceeds({"a": [1, {"b": 2}], "c": "d"}, 3)
    assert json_depth_exceeds({"a": [1, {"b": [3]}]}, 3)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_a_body_over_the_upload_limit_is_a_400_with_the_error_body(auth_client, method, path, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000  # 2.5 MB by default; the rule is the same
    body = '{"name": "' + "x" * 1000 + '"}'
    response = getattr(auth_client, method)(path, body, content_type="application/json")
    assert response.status_code in (400, 404, 405), (response.status_code, response.content[:300])
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "request_too_large", response.content[:300]


def test_an_oversized_body_outside_the_api_keeps_django_s_page(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post("/accounts/login/", {"username": "x" * 2000, "password": "y"})
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
