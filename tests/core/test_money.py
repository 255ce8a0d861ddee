"""One money definition: stored amounts everywhere use ``apps.core.money``'s precision."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest
from django.apps import apps
from django.db import connection, models

from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES, as_stored, quantize_amount, shown_need

# marketdata keeps its own market-step columns until it moves to core (not this app's change).
MONEY_APPS = ("orders", "exchanges", "risk", "portfolio", "bots")


def test_every_stored_amount_uses_the_core_precision():
    odd = [
        f"{model._meta.label}.{field.name} ({field.max_digits}, {field.decimal_places})"
        for app in MONEY_APPS
        for model in apps.get_app_config(app).get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.DecimalField)
        and field.decimal_places >= 10  # fee rates and percentages have their own small precision
        and (field.max_digits, field.decimal_places) != (AMOUNT_DIGITS, AMOUNT_PLACES)
    ]
    assert odd == []


def test_quantize_amount_keeps_the_stored_places():
    assert quantize_amount(Decimal("1") / 3) == Decimal("0.333333333333333333")
    assert quantize_amount(Decimal("2") / 3, ROUND_DOWN) == Decimal("0.666666666666666666")


@pytest.mark.django_db
def test_as_stored_is_what_postgresql_keeps_of_an_amount_with_more_places():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL); SQLite keeps a float, which as_stored is not about")
    ties = [
        "0.0000000000000000005",
        "-0.0000000000000000005",
        "0.0000000000000000015",
        "1.2345678901234567895",
    ]
    values = [Decimal(text) for text in ties] + [
        Decimal(2) / 3,
        Decimal("77936.00852999999") * Decimal("0.001"),
    ]
    with connection.cursor() as cursor:
        for value in values:  # as Django hands a Decimal to an amount column (unrounded)
            cursor.execute(f"SELECT %s::numeric({AMOUNT_DIGITS}, {AMOUNT_PLACES})", [value])
            assert cursor.fetchone()[0] == as_stored(value), value
    assert as_stored(Decimal("0.0000000000000000005")) != quantize_amount(Decimal("0.0000000000000000005"))


def test_a_needed_amount_is_shown_to_the_satoshi_and_never_understated():
    assert shown_need(Decimal("68763854.887776434235850101")) == "68763854.88777644"
    assert shown_need(Decimal("1002.000000000000000000")) == "1002"
    assert shown_need(Decimal("0.000000001")) == "0.00000001"
