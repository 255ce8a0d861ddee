from __future__ import annotations

import pytest
from django.urls import reverse

from apps.bots import services

pytestmark = pytest.mark.django_db


def test_bots_page_shows_empty_state(client, user):
    client.force_login(user)
    response = client.get(reverse("bots:index"))
    assert response.status_code == 200
    assert "No bots yet" in response.content.decode()


def test_bots_page_lists_only_own_bots(client, user, other_user):
    common = {"strategy": "dca", "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1d"}
    services.bot_create(user=user, name="mine-dca", **common)
    services.bot_create(user=other_user, name="their-dca", **common)
    client.force_login(user)
    html = client.get(reverse("bots:index")).content.decode()
    assert "mine-dca" in html
    assert "their-dca" not in html


def test_bots_page_needs_login(client):
    response = client.get(reverse("bots:index"))
    assert response.status_code == 302
