from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import BotFactory

pytestmark = pytest.mark.django_db


def test_bots_page_shows_empty_state(client, user):
    client.force_login(user)
    response = client.get(reverse("bots:index"))
    assert response.status_code == 200
    assert "No bots yet" in response.content.decode()


def test_bots_page_lists_only_own_bots(client, user, other_user):
    BotFactory(owner=user, name="mine-dca")
    BotFactory(owner=other_user, name="their-dca")
    client.force_login(user)
    html = client.get(reverse("bots:index")).content.decode()
    assert "mine-dca" in html
    assert "their-dca" not in html


def test_bots_page_needs_login(client):
    response = client.get(reverse("bots:index"))
    assert response.status_code == 302
