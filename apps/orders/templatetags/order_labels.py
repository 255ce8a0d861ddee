"""The order vocabulary's labels for a page whose script adds rows from live events.

``{% order_labels %}`` writes them as JSON data (not a script: the CSP allows none inline);
``window.Format.label(kind, value)`` (static/js/format.js) reads them, so a row an event adds
says "Buy", "Stop limit" and "Partially filled" as the server-rendered rows do.
"""

from __future__ import annotations

from django import template
from django.utils.html import json_script

from apps.orders.enums import OrderSide, OrderStatus, OrderType
from apps.orders.models import Position

register = template.Library()


@register.simple_tag
def order_labels() -> str:
    return json_script(
        {
            "side": dict(OrderSide.choices),
            "type": dict(OrderType.choices),
            "status": dict(OrderStatus.choices),
            "position_side": dict(Position.Side.choices),
        },
        "order-labels",
    )
