"""One money definition: stored amounts everywhere use ``apps.core.money``'s precision."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from django.apps import apps
from django.db import models

from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES, quantize_amount

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
