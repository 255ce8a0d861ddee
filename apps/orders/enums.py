"""The one order vocabulary: side, type, status and time in force, and its mapping to ccxt.

Owned by ``orders``; the orders models, the paper exchange and the ccxt
gateway all use these names. Plain enums (no model imports), so
``apps.exchanges`` may import them without an import loop.

ccxt's unified API speaks a narrower language: two base types (``market``,
``limit``) plus trigger params, statuses ``open/closed/canceled/expired/rejected``,
``timeInForce`` GTC/IOC/FOK/PO and a ``postOnly`` flag. ``to_ccxt_order`` and
the ``*_from_ccxt`` functions are the only translation between the two.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models


class OrderSide(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"
    STOP_MARKET = "stop_market", "Stop market"
    STOP_LIMIT = "stop_limit", "Stop limit"
    TAKE_PROFIT = "take_profit", "Take profit"
    TAKE_PROFIT_LIMIT = "take_profit_limit", "Take profit limit"
    TRAILING_STOP = "trailing_stop", "Trailing stop"


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # saved, not yet acknowledged by the exchange
    OPEN = "open", "Open"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


class TimeInForce(models.TextChoices):
    GTC = "GTC", "Good till cancelled"
    IOC = "IOC", "Immediate or cancel"
    FOK = "FOK", "Fill or kill"
    POST_ONLY = "PO", "Post only (maker only)"


#: Orders that may still fill.
OPEN_STATUSES = (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
#: Types that carry a limit price.
PRICED_TYPES = (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
#: Types that wait for a trigger price (``stop_price``).
TRIGGERED_TYPES = (
    OrderType.STOP_MARKET,
    OrderType.STOP_LIMIT,
    OrderType.TAKE_PROFIT,
    OrderType.TAKE_PROFIT_LIMIT,
)

# type -> (ccxt base type, ccxt param carrying the trigger price)
_TYPE_TO_CCXT: dict[str, tuple[str, str | None]] = {
    OrderType.MARKET: ("market", None),
    OrderType.LIMIT: ("limit", None),
    OrderType.STOP_MARKET: ("market", "triggerPrice"),
    OrderType.STOP_LIMIT: ("limit", "triggerPrice"),
    OrderType.TAKE_PROFIT: ("market", "takeProfitPrice"),
    OrderType.TAKE_PROFIT_LIMIT: ("limit", "takeProfitPrice"),
    # ccxt's unified trailing params: trailingPercent (+ optional trailingTriggerPrice).
    OrderType.TRAILING_STOP: ("market", "trailingTriggerPrice"),
}
# Exchange-specific type names ccxt passes through in fetched orders.
_CCXT_TYPE_ALIASES = {
    "stop": OrderType.STOP_MARKET,
    "stop_loss": OrderType.STOP_MARKET,
    "stop_market": OrderType.STOP_MARKET,
    "stop_loss_limit": OrderType.STOP_LIMIT,
    "stop_limit": OrderType.STOP_LIMIT,
    "take_profit": OrderType.TAKE_PROFIT,
    "take_profit_market": OrderType.TAKE_PROFIT,
    "take_profit_limit": OrderType.TAKE_PROFIT_LIMIT,
    "trailing_stop": OrderType.TRAILING_STOP,
    "trailing_stop_market": OrderType.TRAILING_STOP,
}
_STATUS_FROM_CCXT = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_STATUS_TO_CCXT = {
    OrderStatus.PENDING: "open",
    OrderStatus.OPEN: "open",
    OrderStatus.PARTIALLY_FILLED: "open",
    OrderStatus.FILLED: "closed",
    OrderStatus.CANCELLED: "canceled",
    OrderStatus.EXPIRED: "expired",
    OrderStatus.REJECTED: "rejected",
}


def to_ccxt_order(
    *,
    type: str,
    price: Decimal | None,
    stop_price: Decimal | None,
    time_in_force: str = TimeInForce.GTC,
    trailing_percent: Decimal | None = None,
) -> tuple[str, Decimal | None, dict[str, Any]]:
    """Our order -> ``(ccxt type, price to send, params)`` for ``ccxt.create_order``.

    Trigger prices travel as strings in ``params`` (no float on the way). An
    order without a separate trigger price uses its price as the trigger (the
    paper exchange's take-profit does the same).
    """
    ccxt_type, trigger_param = _TYPE_TO_CCXT[OrderType(type)]
    params: dict[str, Any] = {}
    if type == OrderType.TRAILING_STOP:
        params["trailingPercent"] = str(trailing_percent)
        if stop_price is not None:
            params[trigger_param] = str(stop_price)
    elif trigger_param is not None:
        params[trigger_param] = str(stop_price if stop_price is not None else price)
    tif = TimeInForce(time_in_force)
    if tif == TimeInForce.POST_ONLY:
        params["postOnly"] = True
    elif tif != TimeInForce.GTC:
        params["timeInForce"] = tif.value
    return ccxt_type, (price if ccxt_type == "limit" else None), params


def type_from_ccxt(raw: dict[str, Any]) -> OrderType:
    """A ccxt order dict's type (plus its trigger fields) -> ``OrderType``."""
    kind = (raw.get("type") or "market").lower()
    if kind in _CCXT_TYPE_ALIASES:
        return _CCXT_TYPE_ALIASES[kind]
    limit = kind == "limit"
    if raw.get("trailingPercent") or raw.get("trailingAmount"):
        return OrderType.TRAILING_STOP
    if raw.get("takeProfitPrice"):
        return OrderType.TAKE_PROFIT_LIMIT if limit else OrderType.TAKE_PROFIT
    if raw.get("triggerPrice") or raw.get("stopPrice") or raw.get("stopLossPrice"):
        return OrderType.STOP_LIMIT if limit else OrderType.STOP_MARKET
    return OrderType.LIMIT if limit else OrderType.MARKET


def status_from_ccxt(status: str | None, *, filled: Decimal | None = None) -> OrderStatus:
    """ccxt status -> ``OrderStatus``; an open order with fills is partially filled."""
    if status in _STATUS_FROM_CCXT:
        return _STATUS_FROM_CCXT[status]
    return OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.OPEN


def status_to_ccxt(status: str) -> str:
    """``OrderStatus`` -> ccxt's status string (for code that talks ccxt's dialect)."""
    return _STATUS_TO_CCXT[OrderStatus(status)]


def time_in_force_from_ccxt(raw: dict[str, Any]) -> TimeInForce:
    if raw.get("postOnly"):
        return TimeInForce.POST_ONLY
    value = (raw.get("timeInForce") or "GTC").upper()
    if value == "GTX":  # Binance's name for post-only
        return TimeInForce.POST_ONLY
    try:
        return TimeInForce(value)
    except ValueError:
        return TimeInForce.GTC  # exchange-specific values (GTX, GTD ...) read as resting
