"""``{% load money %}``: ``{{ value|amount }}`` shows a Decimal amount exactly, without padding zeros.

``floatformat`` would round a crypto amount through a float; ``Decimal.normalize``
alone prints ``1E+2`` for 100.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

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


@register.filter
def money(value) -> str:
    """A summary figure in the quote currency, to the cent: ``Decimal("10980.07355918486059")``
    -> ``"10,980.07"`` (``amount`` would print all 18 places a float-fed sum carries, which ran
    out of the home page's cards); trailing zeros dropped as ``amount`` drops them."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
    return amount(number)
