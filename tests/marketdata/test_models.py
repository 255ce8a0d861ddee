from __future__ import annotations

from decimal import Decimal

import pytest

from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES
from apps.marketdata.models import Market
from apps.marketdata.services import market_ensure

AMOUNT_FIELDS = ("precision_amount", "precision_price", "min_amount", "min_notional")


def test_catalog_amounts_use_the_project_money_precision():
    for name in AMOUNT_FIELDS:
        field = Market._meta.get_field(name)
        assert (field.max_digits, field.decimal_places) == (AMOUNT_DIGITS, AMOUNT_PLACES), name


@pytest.mark.django_db
def test_a_wei_sized_step_and_a_huge_minimum_round_trip_exactly(settings):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL's exact numeric (SQLite stores decimals as 15-digit floats)")
    market_ensure(
        exchange="binance", symbol="WEI/ETH", base="WEI", quote="ETH",
        precision_amount=Decimal("1E-18"), min_notional=Decimal("12345678901234567890.123456789012345678"),
    )  # fmt: skip
    stored = Market.objects.get(symbol="WEI/ETH")
    assert stored.precision_amount == Decimal("1E-18")
    assert stored.min_notional == Decimal("12345678901234567890.123456789012345678")
