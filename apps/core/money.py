"""Project-wide precision for money and crypto amounts stored in the database.

Crypto amounts need 18 decimal places (wei-like units) and totals need room
above that, hence 38 digits. Every stored amount, price and fee uses these
(models through ``amount_field``, API serializers through the constants).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from django.db import models

AMOUNT_DIGITS = 38
AMOUNT_PLACES = 18
#: The smallest stored step, 1e-18.
AMOUNT_QUANTUM = Decimal(1).scaleb(-AMOUNT_PLACES)
ZERO = Decimal("0")


def quantize_amount(value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """``value`` rounded to the places a stored amount keeps."""
    return value.quantize(AMOUNT_QUANTUM, rounding=rounding)


def amount_field(**kwargs) -> models.DecimalField:
    """A ``DecimalField`` with the project's amount precision."""
    return models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, **kwargs)
