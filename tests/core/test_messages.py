"""Flashed messages (``apps.core.messages.LazyMessageMiddleware``): Django's, with the storage
made only by a request that uses it; what the API never touches is neither read nor lost."""

from __future__ import annotations

import pytest

from apps.core import messages as lazy_messages

pytestmark = pytest.mark.django_db

SETTINGS = "/accounts/settings/"
SAVED = "Settings saved."


@pytest.fixture
def storages_made(monkeypatch) -> list[str]:
    made: list[str] = []
    real = lazy_messages.default_storage

    def counting(request):
        made.append(request.path)
        return real(request)

    monkeypatch.setattr(lazy_messages, "default_storage", counting)
    return made


def _save_settings(client):
    body = {
        "display_name": "Ada",
        "timezone": "UTC",
        "display_currency": "USD",
        "default_exchange": "binance",
    }
    response = client.post(SETTINGS, body)
    assert response.status_code == 302, response.content[:300]


def test_a_flashed_message_waits_through_api_requests_and_shows_once(client, user, storages_made):
    client.force_login(user)
    _save_settings(client)  # flashes "Settings saved." and redirects
    assert storages_made == [SETTINGS]
    for path in ("/api/v1/orders/", "/api/v1/auth/me/", "/health/"):
        assert client.get(path).status_code == 200
    assert storages_made == [SETTINGS]  # the API made no storage: the message is neither read nor dropped
    assert SAVED in client.get(SETTINGS).content.decode()  # shown on the next page
    assert SAVED not in client.get(SETTINGS).content.decode()  # once
    assert storages_made == [SETTINGS] * 3
