"""Orders sent (or to be sent) to an exchange, their fills, and the positions they build.

Every order belongs to exactly one account: a live ``ExchangeConnection`` or a
``PaperAccount``. ``apps.orders.services`` writes these rows; status changes go
through ``apps.orders.lifecycle.transition``. Amounts are in the symbol's base
asset, prices in its quote asset, each fee in its own ``fee_asset``.
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


#: Exactly one of the two account columns is set (orders, fills and positions alike).
ONE_ACCOUNT = (Q(connection__isnull=False) & Q(paper_account__isnull=True)) | (
    Q(connection__isnull=True) & Q(paper_account__isnull=False)
)


def account_filter(account) -> dict:
    """``{"connection": account}`` or ``{"paper_account": account}`` for a queryset filter."""
    from apps.exchanges.models import PaperAccount

    return {"paper_account": account} if isinstance(account, PaperAccount) else {"connection": account}


class AccountMixin(models.Model):
    """The account a row belongs to: a live connection or a paper account (exactly one)."""

    connection = models.ForeignKey(
        "exchanges.ExchangeConnection", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    paper_account = models.ForeignKey(
        "exchanges.PaperAccount", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )

    class Meta:
        abstract = True

    @property
    def account(self):
        return self.paper_account if self.paper_account_id else self.connection

    @account.setter
    def account(self, value) -> None:
        from apps.exchanges.models import PaperAccount

        if isinstance(value, PaperAccount):
            self.paper_account, self.connection = value, None
        else:
            self.connection, self.paper_account = value, None

    @property
    def is_paper(self) -> bool:
        return self.paper_account_id is not None


class OrderQuerySet(models.QuerySet):
    def open(self) -> OrderQuerySet:
        """Orders that may still fill (pending, open or partially filled)."""
        return self.filter(status__in=Order.OPEN_STATUSES)

    def for_account(self, account) -> OrderQuerySet:
        return self.filter(**account_filter(account))


class OrderRole(models.TextChoices):
    ENTRY = "entry", "Entry"
    STOP_LOSS = "stop_loss", "Stop-loss leg"
    TAKE_PROFIT = "take_profit", "Take-profit leg"


class Order(AccountMixin):
    # The vocabulary lives in ``apps.orders.enums``; these aliases keep ``Order.Status.OPEN`` readable.
    Side = OrderSide
    Type = OrderType
    Status = OrderStatus
    TimeInForce = TimeInForce
    Role = OrderRole

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
    reduce_only = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(
        max_length=500, blank=True, help_text="why it was rejected, cancelled or expired"
    )
    client_order_id = models.CharField(max_length=64, default=new_client_order_id)
    # Brackets: the stop-loss and take-profit legs point at their entry; when one
    # leg fills the other is cancelled (one-cancels-other).
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="legs",
        help_text="bracket entry",
    )
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.ENTRY)
    held = models.BooleanField(
        default=False,
        help_text="kept by the platform, not yet at the exchange: a bracket leg waiting for its entry "
        "or (stop-loss) for its trigger price",
    )
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
            models.CheckConstraint(condition=ONE_ACCOUNT, name="orders_order_one_account"),
            models.UniqueConstraint(
                fields=["connection", "client_order_id"],
                condition=Q(connection__isnull=False),
                name="orders_order_unique_client_id_live",
            ),
            models.UniqueConstraint(
                fields=["paper_account", "client_order_id"],
                condition=Q(paper_account__isnull=False),
                name="orders_order_unique_client_id_paper",
            ),
            models.CheckConstraint(
                condition=Q(role="entry") | Q(parent__isnull=False), name="orders_order_leg_has_entry"
            ),
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


class Fill(AccountMixin):
    """One execution of an order, as the exchange reported it. Scoped through its order's owner.

    The account columns repeat the order's so that a trade id is unique per account.
    """

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
            models.CheckConstraint(condition=ONE_ACCOUNT, name="orders_fill_one_account"),
            models.UniqueConstraint(
                fields=["connection", "exchange_trade_id"],
                condition=~Q(exchange_trade_id="") & Q(connection__isnull=False),
                name="orders_fill_unique_trade_id_live",
            ),
            models.UniqueConstraint(
                fields=["paper_account", "exchange_trade_id"],
                condition=~Q(exchange_trade_id="") & Q(paper_account__isnull=False),
                name="orders_fill_unique_trade_id_paper",
            ),
            models.CheckConstraint(condition=Q(price__gt=0) & Q(amount__gt=0), name="orders_fill_positive"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="orders_fill_fee_ge0"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} @ {self.price}"

    @property
    def cost(self) -> Decimal:
        return self.price * self.amount


class Position(AccountMixin):
    """What an account holds in one market, built from its fills (spot) or read from the exchange (futures).

    ``size`` is positive (the direction is ``side``); a flat position keeps its
    realized P&L. P&L is in the quote asset.
    """

    class Side(models.TextChoices):
        LONG = "long", "Long"
        SHORT = "short", "Short"
        FLAT = "flat", "Flat"

    class MarginMode(models.TextChoices):
        NONE = "", "Spot"
        ISOLATED = "isolated", "Isolated"
        CROSS = "cross", "Cross"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=60)
    side = models.CharField(max_length=5, choices=Side.choices, default=Side.FLAT)
    size = amount_field(default=Decimal("0"), help_text="in the base asset (contracts for futures)")
    average_entry = amount_field(null=True, blank=True)
    realized_pnl = amount_field(default=Decimal("0"))
    unrealized_pnl = amount_field(default=Decimal("0"))
    mark_price = amount_field(null=True, blank=True)
    leverage = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("1"))
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices, blank=True, default="")
    liquidation_price = amount_field(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol", "id"]
        constraints = [
            models.CheckConstraint(condition=ONE_ACCOUNT, name="orders_position_one_account"),
            models.CheckConstraint(condition=Q(size__gte=0), name="orders_position_size_ge0"),
            models.UniqueConstraint(
                fields=["connection", "symbol"],
                condition=Q(connection__isnull=False),
                name="orders_position_unique_live",
            ),
            models.UniqueConstraint(
                fields=["paper_account", "symbol"],
                condition=Q(paper_account__isnull=False),
                name="orders_position_unique_paper",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.size} {self.symbol}"

    @property
    def is_open(self) -> bool:
        return self.size > 0
