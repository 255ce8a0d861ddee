"""The schema documents every operation's error answers with the one error body, once, globally."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def error_ref(response) -> str | None:
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")


def test_every_operation_documents_its_errors_with_the_error_body(schema):
    missing = []
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        expected = {"400", "404"}
        # Anonymous: registering, and the signal webhook (its path token authenticates; a wrong one is 404).
        if path not in ("/api/v1/auth/register/", "/api/v1/signals/{token}/"):
            expected.add("401")
        if method in ("post", "put", "patch", "delete"):
            expected.add("409")
        for status in sorted(expected):
            if status not in responses or error_ref(responses[status]) != "#/components/schemas/ErrorBody":
                missing.append(f"{method.upper()} {path} {status}")
    assert missing == []
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message", "fields"}


def test_throttled_operations_document_429(schema):
    responses = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]
    assert "429" in responses and "401" in responses


def test_success_responses_are_left_as_the_views_declare_them(schema):
    assert "201" in schema["paths"]["/api/v1/auth/register/"]["post"]["responses"]
    assert "204" in schema["paths"]["/api/v1/auth/logout/"]["post"]["responses"]
