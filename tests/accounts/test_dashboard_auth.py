"""Dashboard accounts: session login with CSRF, registration, logout, password change/reset, settings."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from apps.accounts.models import User

pytestmark = pytest.mark.django_db


def csrf_token(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.cookies["csrftoken"].value


def test_dashboard_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


def test_login_with_csrf_shows_dashboard_shell(user, password):
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client, "/accounts/login/")
    response = client.post(
        "/accounts/login/", {"username": user.email, "password": password, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302 and response.url == "/"
    page = client.get("/").content.decode()
    for label in (
        "Dashboard",
        "Markets",
        "Backtests",
        "Bots",
        "Orders",
        "Portfolio",
        "Risk",
        "Exchanges",
        "Settings",
    ):
        assert f">{label}</a>" in page
    assert 'id="live-indicator"' in page
    assert "js/live.js" in page


def test_login_without_csrf_token_is_refused(user, password):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": user.email, "password": password})
    assert response.status_code == 403


def test_login_with_wrong_password_shows_error(client, user):
    response = client.post("/accounts/login/", {"username": user.email, "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct" in response.content.decode()


def test_login_lockout_after_failures(client, user, password, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        client.post("/accounts/login/", {"username": user.email, "password": "nope"})
    response = client.post("/accounts/login/", {"username": user.email, "password": password})
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_register_logs_in_and_redirects(client):
    response = client.post(
        "/accounts/register/",
        {
            "email": "Fresh@Example.com",
            "password1": "a-Long-passphrase-9",
            "password2": "a-Long-passphrase-9",
        },
    )
    assert response.status_code == 302 and response.url == "/"
    assert User.objects.filter(email="fresh@example.com").exists()
    assert client.get("/").status_code == 200


def test_register_shows_errors_and_creates_nothing(client, user):
    response = client.post(
        "/accounts/register/", {"email": user.email, "password1": "short", "password2": "different"}
    )
    text = response.content.decode()
    assert response.status_code == 200
    assert "already exists" in text
    assert "differ" in text
    assert User.objects.count() == 1


def test_logout_requires_post(client, user):
    client.force_login(user)
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_password_change(client, user, password):
    client.force_login(user)
    response = client.post(
        "/accounts/password/change/",
        {
            "old_password": password,
            "new_password1": "another-Long-pass-7",
            "new_password2": "another-Long-pass-7",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("another-Long-pass-7")


def test_password_reset_flow(client, user):
    response = client.post("/accounts/password/reset/", {"email": user.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form_url = client.get(link).url  # Django swaps the token into the session and redirects
    response = client.post(
        form_url, {"new_password1": "reset-Long-pass-3", "new_password2": "reset-Long-pass-3"}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("reset-Long-pass-3")


def test_settings_page_saves_preferences(client, user):
    client.force_login(user)
    response = client.post(
        "/accounts/settings/",
        {
            "display_name": "Ada",
            "timezone": "Asia/Tokyo",
            "display_currency": "BTC",
            "default_exchange": "bybit",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.timezone, user.display_currency, user.default_exchange) == ("Asia/Tokyo", "BTC", "bybit")


def test_settings_page_rejects_unknown_exchange(client, user):
    client.force_login(user)
    response = client.post(
        "/accounts/settings/",
        {"display_name": "", "timezone": "UTC", "display_currency": "USD", "default_exchange": "nope"},
    )
    assert response.status_code == 200
    assert "Unknown exchange" in response.content.decode()
    user.refresh_from_db()
    assert user.default_exchange == "binance"
