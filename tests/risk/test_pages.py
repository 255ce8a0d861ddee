from __future__ import annotations

import pytest
from django.urls import reverse

from apps.risk import services

pytestmark = pytest.mark.django_db


def test_risk_page_shows_defaults(client, user):
    client.force_login(user)
    response = client.get(reverse("risk:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "these are the defaults" in html and "No limit" in html


def test_risk_page_shows_saved_limits_and_kill_switch(client, user):
    from decimal import Decimal

    services.risk_profile_update(
        user=user,
        currency="USDT",
        max_position_notional=Decimal("12500.000"),
        max_daily_loss=None,
        max_leverage=Decimal("2"),
        max_open_orders=7,
        kill_switch=True,
    )
    client.force_login(user)
    html = client.get(reverse("risk:index")).content.decode()
    assert "12,500" in html and "Kill switch ON" in html
