"""An API request that meets a lost dependency answers 503 with the one error body and
Retry-After (not Django's HTML 500), so clients retry; the real outages are in tests/faults."""

from __future__ import annotations

import json

import kombu.exceptions
import pytest
import redis.exceptions
from django.db import InterfaceError, OperationalError
from rest_framework.permissions import AllowAny
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from tests.support.api import assert_error


def view_raising(exc: Exception):
    class Failing(APIView):
        permission_classes = [AllowAny]
        authentication_classes = []

        def get(self, request):
            raise exc

    return Failing.as_view()


@pytest.mark.parametrize(
    ("exc", "what"),
    [
        (OperationalError("terminating connection due to administrator command"), "The database"),
        (InterfaceError("connection already closed"), "The database"),
        (kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379"), "The job queue"),
        (redis.exceptions.ConnectionError("Connection refused"), "The cache"),
    ],
)
def test_a_lost_dependency_answers_503_with_the_error_body_and_retry_after(exc, what):
    response = view_raising(exc)(APIRequestFactory().get("/api/v1/anything/"))
    response.render()
    response.json = lambda: json.loads(response.content)  # as the test client's responses have
    error = assert_error(response, 503, "service_unavailable")
    assert error["message"].startswith(f"{what} is unavailable")
    assert response["Retry-After"] == "5"


def test_a_bug_still_answers_500():
    with pytest.raises(ZeroDivisionError):
        view_raising(ZeroDivisionError("a bug"))(APIRequestFactory().get("/api/v1/anything/"))
