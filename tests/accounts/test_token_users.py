"""A token's user is kept per process while the users table is unchanged (apps/accounts/authentication.py).

Every way the row can change (deactivation, deletion, any save) is seen by the next request,
which reads the row again with every check simplejwt makes. These run on whatever cache the
suite has: the local memory cache without services, Redis with them.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from apps.accounts import authentication
from apps.accounts.models import User
from apps.core.api import response_cache
from tests.factories import UserFactory

ORDERS = "/api/v1/orders/"  # filters by the owner's id: the view itself never reads the users table
ME = "/api/v1/auth/me/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cache_on(settings):
    settings.API_RESPONSE_CACHE = True
    authentication._kept.clear()
    authentication._verified.clear()


def _bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


def _get(client, path=ORDERS) -> tuple[int, str, int]:
    """(status, error code, reads of the users table)."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    code = response.json().get("error", {}).get("code", "") if response.status_code != 200 else ""
    return (
        response.status_code,
        code,
        sum('FROM "accounts_user"' in q["sql"] for q in queries.captured_queries),
    )


def test_the_users_row_is_read_once_while_the_table_is_unchanged(user):
    client = _bearer(user)
    assert _get(client) == (200, "", 1)  # read at the table's version (started by the user's insert): kept
    assert _get(client) == (200, "", 0)
    assert _get(client) == (200, "", 0)
    UserFactory()  # any write to the table: every kept user is read again
    assert _get(client) == (200, "", 1)
    assert _get(client) == (200, "", 0)


def test_a_deactivated_or_deleted_user_is_refused_at_the_next_request(user):
    client = _bearer(user)
    _get(client)
    _get(client)
    assert _get(client) == (200, "", 0)
    User.objects.filter(pk=user.pk).update(is_active=False)  # no signal, no save(): the version moves
    status, code, _reads = _get(client)
    assert (status, code) == (401, "user_inactive")
    User.objects.filter(pk=user.pk).update(is_active=True)
    assert _get(client)[:2] == (200, "")
    user.delete()
    status, code, _reads = _get(client)
    assert (status, code) == (401, "user_not_found")


def test_each_token_gets_its_own_user(user, other_user):
    mine, theirs = _bearer(user), _bearer(other_user)
    for _ in range(3):
        assert mine.get(ME).json()["email"] == user.email
        assert theirs.get(ME).json()["email"] == other_user.email


def test_without_the_cache_every_request_reads_the_row(user, settings):
    settings.API_RESPONSE_CACHE = False
    client = _bearer(user)
    assert [_get(client)[2] for _ in range(3)] == [1, 1, 1]


def test_a_version_this_process_could_not_send_stops_keeping(user, monkeypatch):
    client = _bearer(user)
    _get(client)
    _get(client)
    assert _get(client)[2] == 0
    # A write whose new version did not reach the cache (Redis down): nothing kept is trusted.
    monkeypatch.setattr(response_cache, "_unsent", {"accounts_user"})
    monkeypatch.setattr(response_cache, "bump", lambda tables: None)  # still unreachable
    assert _get(client)[2] == 1


def test_a_tokens_signature_is_checked_once_and_its_expiry_at_every_request(user, monkeypatch):
    from rest_framework_simplejwt import authentication as simplejwt

    verified = []
    check = simplejwt.JWTAuthentication.get_validated_token
    monkeypatch.setattr(
        simplejwt.JWTAuthentication,
        "get_validated_token",
        lambda self, raw: verified.append(raw) or check(self, raw),
    )
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=2))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert [client.get(ORDERS).status_code for _ in range(3)] == [200, 200, 200]
    assert len(verified) == 1
    # A token of another signature (the same claims, tampered) is not taken for the kept one.
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer {str(token)[:-2]}xx")
    assert forged.get(ORDERS).status_code == 401
    time.sleep(max(0.0, token["exp"] - time.time()) + 0.1)  # expired: verified anew, and refused
    response = client.get(ORDERS)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "token_not_valid")
