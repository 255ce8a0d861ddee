from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.portfolio import services

pytestmark = pytest.mark.django_db


def test_portfolio_page_empty_state(client, user):
    client.force_login(user)
    response = client.get(reverse("portfolio:index"))
    assert response.status_code == 200
    assert "No portfolio history yet" in response.content.decode()


def test_portfolio_page_shows_latest_equity(client, user, other_user):
    when = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    services.equity_snapshot_record(user=user, equity=Decimal("10250.75"), currency="USDT", timestamp=when)
    services.equity_snapshot_record(
        user=other_user, equity=Decimal("777777"), currency="USDT", timestamp=when
    )
    client.force_login(user)
    html = client.get(reverse("portfolio:index")).content.decode()
    assert "10,250.75" in html
    assert "777,777" not in html
