from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.risk import services
from apps.risk.models import RiskProfile

pytestmark = pytest.mark.django_db


def test_risk_page_shows_defaults(client, user):
    client.force_login(user)
    response = client.get(reverse("risk:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "these are the defaults" in html and "No limit" in html
    assert not RiskProfile.objects.exists()


def test_risk_page_shows_saved_limits_and_kill_switch(client, user):
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


def test_risk_form_saves_limits(client, user):
    client.force_login(user)
    data = {
        "currency": "usdt",
        "max_position_notional": "5000",
        "max_daily_loss": "",
        "max_leverage": "2",
        "max_open_orders": "10",
    }
    response = client.post(reverse("risk:index"), data)
    assert response.status_code == 302
    profile = RiskProfile.objects.get(owner=user)
    assert profile.max_position_notional == Decimal("5000") and profile.max_daily_loss is None
    assert profile.currency == "USDT" and profile.kill_switch is False


def test_risk_form_leaves_an_engaged_kill_switch_on(client, user):
    services.risk_kill_switch_set(user=user, engaged=True)
    client.force_login(user)
    data = {"currency": "USDT", "max_leverage": "1", "max_open_orders": "3"}
    assert client.post(reverse("risk:index"), data).status_code == 302
    profile = RiskProfile.objects.get(owner=user)
    assert profile.kill_switch is True and profile.max_open_orders == 3


def test_risk_form_shows_the_services_errors_on_their_fields(client, user):
    client.force_login(user)
    data = {"currency": "USDT", "max_position_notional": "-1", "max_leverage": "500", "max_open_orders": "0"}
    response = client.post(reverse("risk:index"), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert {"max_position_notional", "max_leverage", "max_open_orders"} <= set(errors)
    assert not RiskProfile.objects.filter(owner=user).exists()


def test_kill_switch_button_keeps_the_other_limits(client, user):
    services.risk_profile_update(
        user=user,
        currency="USDT",
        max_position_notional=Decimal("900"),
        max_daily_loss=None,
        max_leverage=Decimal("1"),
        max_open_orders=5,
        kill_switch=False,
    )
    client.force_login(user)
    assert client.post(reverse("risk:kill-switch"), {"engaged": "on"}).status_code == 302
    profile = RiskProfile.objects.get(owner=user)
    assert profile.kill_switch is True and profile.max_position_notional == Decimal("900")
    client.post(reverse("risk:kill-switch"), {"engaged": "off"})
    profile.refresh_from_db()
    assert profile.kill_switch is False
    assert client.get(reverse("risk:kill-switch")).status_code == 405
