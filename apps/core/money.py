"""Project-wide precision for money and crypto amounts stored in the database.

Crypto amounts need 18 decimal places (wei-like units) and totals need room
above that, hence 38 digits. Every stored amount, price and fee uses these
(models through ``amount_field``, API serializers through the constants).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal

from django.db import models

AMOUNT_DIGITS = 38
AMOUNT_PLACES = 18
#: The smallest stored step, 1e-18.
AMOUNT_QUANTUM = Decimal(1).scaleb(-AMOUNT_PLACES)
ZERO = Decimal("0")


def quantize_amount(value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """``value`` rounded to the places a stored amount keeps."""
    return value.quantize(AMOUNT_QUANTUM, rounding=rounding)


#: The places an amount is shown with in a message (one satoshi).
SHOWN_QUANTUM = Decimal("1e-8")


def shown_need(value: Decimal) -> str:
    """An amount an order needs, for a message: rounded up to ``SHOWN_QUANTUM`` (never
    understated), without padding zeros. ``Decimal("68763854.887776434235850101")`` ->
    ``"68763854.88777644"``, where the 18 places a stored amount keeps helped nobody."""
    return f"{value.quantize(SHOWN_QUANTUM, rounding=ROUND_UP).normalize():f}"


def as_stored(value: Decimal) -> Decimal:
    """What PostgreSQL's ``numeric`` column keeps of ``value``: rounded to its places, a tie away
    from zero (Django hands the Decimal over unrounded; ``tests/core/test_money.py`` checks it)."""
    return quantize_amount(value, ROUND_HALF_UP)


#: SQLite, the embedded default, keeps a ``DecimalField`` as a binary float (about 16
#: significant digits), so an amount read back can be a float's width off what was written,
#: and releasing a reservation can leave ``used`` a residue below zero (PostgreSQL's
#: ``numeric`` is exact and never does). One satoshi is far above that residue for any
#: balance under 10 million and far below any amount that matters.
FLOAT_RESIDUE = Decimal("1e-8")


def float_residue_cleared(value: Decimal, *, vendor: str) -> Decimal:
    """``value``, or zero where it is a float's residue below zero on SQLite (never on PostgreSQL)."""
    if vendor == "sqlite" and -FLOAT_RESIDUE < value < ZERO:
        return ZERO
    return value


def amount_field(**kwargs) -> models.DecimalField:
    """A ``DecimalField`` with the project's amount precision."""
    return models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, **kwargs)
