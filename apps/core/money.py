"""Project-wide precision for money and crypto amounts stored in the database.

Crypto amounts need 18 decimal places (wei-like units) and totals need room
above that, hence 38 digits (the same precision as ``apps.exchanges``).
"""

from __future__ import annotations

from django.db import models

AMOUNT_DIGITS = 38
AMOUNT_PLACES = 18


def amount_field(**kwargs) -> models.DecimalField:
    """A ``DecimalField`` with the project's amount precision."""
    return models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, **kwargs)
