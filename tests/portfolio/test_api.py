"""Equity history API: owner-scoped, date-filtered, paginated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.core.errors import ValidationFailed
from apps.portfolio import selectors, services
from apps.portfolio.models import EquitySnapshot
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db


URL = reverse("portfolio-api:equity-list")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(user, day: int, equity: str, currency: str = "USDT") -> EquitySnapshot:
    return services.equity_snapshot_record(
        user=user, equity=Decimal(equity), currency=currency, timestamp=T0 + timedelta(days=day)
    )


@pytest.mark.postgres_decimals
def test_list_is_newest_first_and_only_own(auth_client, user, other_user):
    record(user, 0, "1000")
    record(user, 1, "1010.123456789012345678")
    record(other_user, 2, "99")
    body = auth_client.get(URL).json()
    assert body["count"] == 2
    assert [Decimal(s["equity"]) for s in body["results"]] == [
        Decimal("1010.123456789012345678"),
        Decimal("1000"),
    ]
    assert body["results"][0]["currency"] == "USDT"


def test_date_filters_are_start_inclusive_end_exclusive(auth_client, user):
    for day in range(5):
        record(user, day, str(1000 + day))
    response = auth_client.get(URL, {"start": "2026-11-02T00:00:00Z", "end": "2026-11-04T00:00:00Z"})
    assert [s["equity"] for s in response.json()["results"]] == [
        "1002.000000000000000000",
        "1001.000000000000000000",
    ]


def test_currency_filter_and_pagination(auth_client, user):
    record(user, 0, "1", currency="BTC")
    for day in range(3):
        record(user, day, "1000")
    assert auth_client.get(URL, {"currency": "btc"}).json()["count"] == 1
    body = auth_client.get(URL, {"page_size": 2}).json()
    assert body["count"] == 4 and len(body["results"]) == 2 and body["next"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-13-01"}, "end"),
        ({"start": "2026-11-05T00:00:00Z", "end": "2026-11-01T00:00:00Z"}, "end"),
    ],
)
def test_bad_dates_are_400(auth_client, params, field):
    assert_error(auth_client.get(URL, params), 400, "invalid", field)


def test_anonymous_is_401(api_client):
    assert_error(api_client.get(URL), 401, "not_authenticated")


def test_recording_the_same_time_twice_replaces_the_value(user):
    record(user, 0, "1000")
    record(user, 0, "1005")
    assert [s.equity for s in EquitySnapshot.objects.filter(owner=user)] == [Decimal("1005")]


def test_record_refuses_bad_values(user):
    with pytest.raises(ValidationFailed) as info:
        services.equity_snapshot_record(
            user=user, equity=Decimal("NaN"), currency="", timestamp=datetime(2026, 11, 1)
        )
    assert set(info.value.fields) == {"equity", "currency", "timestamp"}


def test_latest_is_the_newest_snapshot_per_currency(user, other_user):
    record(user, 0, "1000")
    record(user, 3, "1100")
    record(user, 1, "0.5", currency="BTC")
    record(user, 2, "0.6", currency="BTC")
    record(other_user, 9, "5")
    latest = selectors.equity_latest(user=user)
    assert [(s.currency, s.equity) for s in latest] == [("BTC", Decimal("0.6")), ("USDT", Decimal("1100"))]
