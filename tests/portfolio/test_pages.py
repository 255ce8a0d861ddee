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


def test_a_brand_new_user_is_shown_the_next_step(client, user):
    client.force_login(user)
    html = client.get(reverse("portfolio:index")).content.decode()
    assert reverse("bots:new") in html and reverse("exchanges:connection-add") in html
    assert "portfolio-data" not in html


def test_an_account_without_history_says_when_it_will_appear(client, user):
    from tests.factories import PaperAccountFactory

    PaperAccountFactory(user=user)
    client.force_login(user)
    html = client.get(reverse("portfolio:index")).content.decode()
    assert "valued every minute" in html


def test_page_with_history_has_cards_charts_and_metrics(client, user):
    from tests.factories import PaperAccountFactory

    PaperAccountFactory(user=user, initial_balances={"USDT": "1234.5"})
    services.snapshot_take(user=user)
    client.force_login(user)
    html = client.get(reverse("portfolio:index")).content.decode()
    for part in (
        "portfolio-summary",
        "1,234.5",
        "portfolio-equity",
        "portfolio-daily",
        "portfolio-monthly",
        "portfolio-exposure",
        "Sharpe",
        "Win rate",
        "portfolio/portfolio.js",
        'id="portfolio-data"',
    ):
        assert part in html, part
