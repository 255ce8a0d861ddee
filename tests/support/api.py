"""Assertions about API answers shared by every app's tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def assert_error(
    response, status: int, code: str | None = None, fields: str | Iterable[str] = ()
) -> dict[str, Any]:
    """Assert the one error body ``{"error": {"code", "message", "fields"}}`` and return ``error``.

    ``code`` is checked when given; each name in ``fields`` must be flagged, either
    itself or through a nested part of it (``"params"`` is flagged by ``"params.fast"``).
    """
    assert response.status_code == status, (response.status_code, response.content[:1000])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}, error
    assert error["code"] and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    for field in [fields] if isinstance(fields, str) else fields:
        assert any(key == field or key.startswith(f"{field}.") for key in error["fields"]), (field, error)
    return error
