"""Orders sent (or to be sent) to an exchange, and their fills.

Placement, syncing and cancelling are later issues; these rows are what they
will write. Amounts are in the symbol's base asset, prices in its quote asset,
each fee in its own ``fee_asset``.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from apps.core.money import amount_field
from apps.exchanges.catalog import exchange_choices
from apps.orders.enums import (
    OPEN_STATUSES,
    PRICED_TYPES,
    TRIGGERED_TYPES,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)


def new_client_order_id() -> str:
    # 32 letters/digits starting with a letter: inside every supported exchange's
    # client-id rules (OKX: 1-32 alphanumerics, Binance: up to 36 characters).
    return "t" + uuid.uuid4().hex[:31]


class OrderQuerySet(models.QuerySet):
    def open(self) -> OrderQuerySet:
        """Orders that may still fill (pending, open or partially filled)."""
        return self.filter(status__in=Order.OPEN_STATUSES)


class Order(models.Model):
    # The vocabulary lives in ``apps.orders.enums``; these aliases keep ``Order.Status.OPEN`` readable.
    Side = OrderSide
    Type = OrderType
    Status = OrderStatus
    TimeInForce = TimeInForce

    OPEN_STATUSES = OPEN_STATUSES

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders")
    # SET_NULL: an order is trading history and outlives the bot that placed it.
    bot = models.ForeignKey(
        "bots.Bot", on_delete=models.SET_NULL, null=True, blank=True, related_name="orders"
    )
    exchange = models.CharField(max_length=40, choices=exchange_choices(), help_text="ccxt exchange id")
    symbol = models.CharField(max_length=60, help_text="ccxt unified symbol, e.g. BTC/USDT")
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=20, choices=Type.choices)
    amount = amount_field(help_text="in the base asset")
    price = amount_field(null=True, blank=True, help_text="limit price (quote asset)")
    stop_price = amount_field(
        null=True, blank=True, help_text="trigger price of stop and take-profit orders (trailing: activation)"
    )
    trailing_percent = models.DecimalField(
        max_digits=7, decimal_places=4, null=True, blank=True, help_text="trailing stop distance in percent"
    )
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.GTC)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    client_order_id = models.CharField(max_length=64, unique=True, default=new_client_order_id)
    exchange_order_id = models.CharField(max_length=64, blank=True)
    filled = amount_field(default=Decimal("0"), help_text="in the base asset")
    average_price = amount_field(null=True, blank=True, help_text="average fill price (quote asset)")
    fee = amount_field(default=Decimal("0"))
    fee_asset = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="orders_order_amount_gt0"),
            models.CheckConstraint(
                condition=Q(filled__gte=0) & Q(filled__lte=F("amount")), name="orders_order_filled_in_range"
            ),
            models.CheckConstraint(condition=Q(fee__gte=0), name="orders_order_fee_ge0"),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gt=0), name="orders_order_price_gt0"
            ),
            models.CheckConstraint(
                condition=Q(stop_price__isnull=True) | Q(stop_price__gt=0), name="orders_order_stop_price_gt0"
            ),
            models.CheckConstraint(
                condition=~Q(type__in=[str(t) for t in PRICED_TYPES]) | Q(price__isnull=False),
                name="orders_order_priced_type_has_price",
            ),
            models.CheckConstraint(
                condition=~Q(type__in=[str(t) for t in TRIGGERED_TYPES]) | Q(stop_price__isnull=False),
                name="orders_order_trigger_has_stop_price",
            ),
            models.CheckConstraint(
                condition=~Q(type=str(OrderType.TRAILING_STOP))
                | (Q(trailing_percent__isnull=False) & Q(trailing_percent__gt=0)),
                name="orders_order_trailing_has_percent",
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "status"]),
            models.Index(fields=["exchange", "exchange_order_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.amount} {self.symbol} {self.type} ({self.status})"

    @property
    def base_asset(self) -> str:
        return self.symbol.split("/", 1)[0]

    @property
    def quote_asset(self) -> str:
        return self.symbol.split("/", 1)[-1].split(":", 1)[0]

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class Fill(models.Model):
    """One execution of an order, as the exchange reported it. Scoped through its order's owner."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fills")
    exchange_trade_id = models.CharField(max_length=64, blank=True)
    price = amount_field(help_text="quote asset")
    amount = amount_field(help_text="base asset")
    fee = amount_field(default=Decimal("0"))
    fee_asset = models.CharField(max_length=20, blank=True)
    is_maker = models.BooleanField(null=True, blank=True, help_text="unknown when the exchange does not say")
    timestamp = models.DateTimeField(help_text="when the exchange executed it")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["timestamp", "id"]
        constraints = [
            # Syncing trades from the exchange twice must not record a fill twice.
            models.UniqueConstraint(
                fields=["order", "exchange_trade_id"],
                condition=~Q(exchange_trade_id=""),
                name="orders_fill_unique_trade_id",
            ),
            models.CheckConstraint(condition=Q(price__gt=0) & Q(amount__gt=0), name="orders_fill_positive"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="orders_fill_fee_ge0"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} @ {self.price}"

    @property
    def cost(self) -> Decimal:
        return self.price * self.amount
