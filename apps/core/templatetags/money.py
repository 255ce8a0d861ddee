"""``{% load money %}``: ``{{ value|amount }}`` shows a Decimal amount exactly, without padding zeros.

``floatformat`` would round a crypto amount through a float; ``Decimal.normalize``
alone prints ``1E+2`` for 100.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


@register.filter
def amount(value) -> str:
    """``Decimal("1500.250000")`` -> ``"1,500.25"``; ``None`` -> ``""`` (pair it with ``|default``)."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
    return f"{number.normalize():,f}"
