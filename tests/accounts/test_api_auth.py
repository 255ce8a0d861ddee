"""Auth API: register, token pair, refresh, logout, me, preferences — and every bad input."""

from __future__ import annotations

import uuid

import pytest

from apps.accounts.models import User
from apps.core.api.throttling import throttle_reset
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register/"
TOKEN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"
LOGOUT = "/api/v1/auth/logout/"
ME = "/api/v1/auth/me/"
PREFERENCES = "/api/v1/auth/me/preferences/"


def unique_email() -> str:
    return f"new-{uuid.uuid4().hex[:10]}@example.com"


def test_register_creates_user_and_returns_working_tokens(api_client):
    email = unique_email()
    response = api_client.post(REGISTER, {"email": email.upper(), "password": "a-Long-passphrase-9"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["email"] == email
    assert User.objects.filter(email=email).count() == 1
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert api_client.get(ME).json()["email"] == email


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "email"),
        ({"email": "not-an-email", "password": "a-Long-passphrase-9"}, "email"),
        ({"email": "x@example.com"}, "password"),
        ({"email": "x@example.com", "password": "short"}, "password"),
        ({"email": "x@example.com", "password": "12345678901"}, "password"),
        (
            {"email": "x@example.com", "password": "a-Long-passphrase-9", "display_name": "n" * 81},
            "display_name",
        ),
    ],
)
def test_register_rejects_bad_input_with_error_body(api_client, payload, field):
    assert_error(api_client.post(REGISTER, payload), 400, "invalid", field)
    assert not User.objects.filter(email="x@example.com").exists()


def test_register_rejects_duplicate_email_case_insensitively(api_client, user):
    error = assert_error(
        api_client.post(REGISTER, {"email": user.email.upper(), "password": "a-Long-passphrase-9"}), 400
    )
    assert "already exists" in error["message"]


def test_register_rejects_non_json_body(api_client):
    response = api_client.post(REGISTER, "{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_token_pair_and_refresh(api_client, user, password):
    tokens = api_client.post(TOKEN, {"email": user.email, "password": password}).json()
    assert {"access", "refresh"} <= set(tokens)
    refreshed = api_client.post(REFRESH, {"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200
    assert refreshed.json()["access"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    assert api_client.get(ME).status_code == 200


def test_login_with_wrong_password_is_401_with_error_body(api_client, user):
    assert_error(api_client.post(TOKEN, {"email": user.email, "password": "wrong"}), 401)


@pytest.mark.parametrize("payload", [{}, {"email": "a@example.com"}, {"password": "x"}])
def test_login_missing_fields(api_client, payload):
    assert_error(api_client.post(TOKEN, payload), 400, "invalid")


@pytest.mark.parametrize("refresh", ["", "garbage", "a.b.c"])
def test_refresh_with_bad_token(api_client, refresh):
    response = api_client.post(REFRESH, {"refresh": refresh})
    assert response.status_code in (400, 401)
    assert_error(response, response.status_code)


def test_login_locks_account_after_repeated_failures(api_client, user, password, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        api_client.post(TOKEN, {"email": user.email, "password": "wrong"})
    error = assert_error(api_client.post(TOKEN, {"email": user.email, "password": password}), 400)
    assert "Too many failed login attempts" in error["message"]


def test_login_endpoint_is_rate_limited_per_client(api_client, user, password, settings, throttle_clock):
    settings.LOGIN_THROTTLE_RATE = "3/minute"
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    throttle_reset(scope="login", ident=address)
    for _ in range(3):
        api_client.post(TOKEN, {"email": user.email, "password": password}, REMOTE_ADDR=address)
    error = assert_error(
        api_client.post(TOKEN, {"email": user.email, "password": password}, REMOTE_ADDR=address),
        429,
        "throttled",
    )
    assert error["fields"]["retry_after_seconds"] > 0


def test_me_requires_authentication(api_client):
    assert_error(api_client.get(ME), 401, "not_authenticated")


def test_me_patch_updates_only_given_fields(auth_client, user):
    response = auth_client.patch(ME, {"display_name": "Satoshi"})
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.display_name == "Satoshi"
    assert user.timezone == "UTC"


def test_me_patch_cannot_change_email(auth_client, user):
    email = user.email
    auth_client.patch(ME, {"email": "other@example.com"})
    user.refresh_from_db()
    assert user.email == email


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"display_currency": "DOGE"}, "display_currency"),
        ({"default_exchange": "not-an-exchange"}, "default_exchange"),
    ],
)
def test_me_patch_rejects_bad_preferences(auth_client, user, payload, field):
    assert_error(auth_client.patch(ME, payload), 400, "invalid", field)
    user.refresh_from_db()
    assert user.timezone == "UTC" and user.display_currency == "USD" and user.default_exchange == "binance"


def test_preferences_put_replaces_all(auth_client, user):
    payload = {"timezone": "Europe/Berlin", "display_currency": "EUR", "default_exchange": "kraken"}
    response = auth_client.put(PREFERENCES, payload)
    assert response.status_code == 200, response.content
    user.refresh_from_db()
    assert (user.timezone, user.display_currency, user.default_exchange) == ("Europe/Berlin", "EUR", "kraken")


def test_preferences_put_requires_every_field(auth_client):
    error = assert_error(auth_client.put(PREFERENCES, {"timezone": "UTC"}), 400, "invalid")
    assert {"display_currency", "default_exchange"} <= set(error["fields"])


def test_logout_revokes_refresh_token(api_client, user, password):
    tokens = api_client.post(TOKEN, {"email": user.email, "password": password}).json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api_client.post(LOGOUT, {"refresh": tokens["refresh"]}).status_code == 204
    api_client.credentials()
    assert_error(api_client.post(REFRESH, {"refresh": tokens["refresh"]}), 401)


def test_logout_with_bad_token(auth_client):
    assert_error(auth_client.post(LOGOUT, {"refresh": "nope"}), 400, "invalid", "refresh")


def test_unknown_api_path_is_json_404(api_client):
    assert_error(api_client.get("/api/v1/does-not-exist/"), 404, "not_found")


def test_wrong_method_is_405_with_error_body(auth_client):
    assert_error(auth_client.delete(ME), 405, "method_not_allowed")


def test_login_throttle_ignores_forwarded_for_without_trusted_proxies(
    api_client, user, password, settings, throttle_clock
):
    settings.LOGIN_THROTTLE_RATE = "3/minute"
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.8"
    throttle_reset(scope="login", ident=address)
    for n in range(3):
        api_client.post(
            TOKEN,
            {"email": user.email, "password": password},
            REMOTE_ADDR=address,
            HTTP_X_FORWARDED_FOR=f"1.1.1.{n}",
        )
    # A fresh X-Forwarded-For per request does not make a fresh client.
    response = api_client.post(
        TOKEN,
        {"email": user.email, "password": password},
        REMOTE_ADDR=address,
        HTTP_X_FORWARDED_FOR="9.9.9.9",
    )
    assert_error(response, 429, "throttled")


def test_behind_one_trusted_proxy_the_address_it_appended_is_the_client(
    api_client, user, password, settings, throttle_clock
):
    settings.LOGIN_THROTTLE_RATE = "2/minute"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}  # TRUSTED_PROXY_COUNT=1
    proxy = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"
    client_a, client_b = f"172.16.{uuid.uuid4().int % 250}.1", f"172.17.{uuid.uuid4().int % 250}.2"
    body = {"email": user.email, "password": password}

    def post(forged: str, real: str):
        return api_client.post(TOKEN, body, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"{forged}, {real}")

    assert post("1.1.1.1", client_a).status_code == 200
    assert post("2.2.2.2", client_a).status_code == 200
    assert_error(post("3.3.3.3", client_a), 429, "throttled")  # forged left-hand values do not help
    assert post("1.1.1.1", client_b).status_code == 200  # another client behind the same proxy is not blocked


def test_a_used_refresh_token_is_refused_after_rotation(api_client, user, password):
    tokens = api_client.post(TOKEN, {"email": user.email, "password": password}).json()
    rotated = api_client.post(REFRESH, {"refresh": tokens["refresh"]})
    assert rotated.status_code == 200 and rotated.json()["refresh"] != tokens["refresh"]
    assert_error(api_client.post(REFRESH, {"refresh": tokens["refresh"]}), 401, "token_not_valid")
    assert api_client.post(REFRESH, {"refresh": rotated.json()["refresh"]}).status_code == 200


def test_a_deleted_users_refresh_token_is_401(api_client, user, password):
    tokens = api_client.post(TOKEN, {"email": user.email, "password": password}).json()
    user.delete()
    assert_error(api_client.post(REFRESH, {"refresh": tokens["refresh"]}), 401)


def test_register_refuses_an_email_longer_than_254_characters(api_client):
    email = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".com"
    assert len(email) > 254
    assert_error(
        api_client.post(REGISTER, {"email": email, "password": "a-Long-passphrase-9"}),
        400,
        "invalid",
        "email",
    )


@pytest.mark.parametrize(
    ("method", "url", "payload"),
    [
        ("post", REGISTER, {"email": "x@example.com", "password": "a-Long-passphrase-9", "is_staff": True}),
        ("patch", ME, {"display_name": "x", "is_superuser": True}),
        (
            "put",
            PREFERENCES,
            {"timezone": "UTC", "display_currency": "USD", "default_exchange": "binance", "x": 1},
        ),
    ],
)
def test_unknown_fields_are_refused(auth_client, method, url, payload):
    unknown = (
        set(payload)
        - {"email", "password", "display_name", "timezone", "display_currency", "default_exchange"}
    ).pop()
    error = assert_error(getattr(auth_client, method)(url, payload), 400, "invalid", unknown)
    assert error["fields"][unknown] == ["Unknown field."]


def test_a_missing_or_bad_token_is_401_with_a_real_code_and_message(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    error = assert_error(api_client.get(ME), 401, "token_not_valid")
    assert "token" in error["message"].lower()
    api_client.credentials()
    error = assert_error(api_client.get(ME), 401, "not_authenticated")


@pytest.mark.parametrize("path", ["/api/v1/does-not-exist/", "/api/nope/", "/api/v1/orders/1/nothing/"])
def test_unknown_api_paths_are_json_404_with_debug_on_too(api_client, settings, path):
    settings.DEBUG = True
    assert_error(api_client.get(path), 404, "not_found")
