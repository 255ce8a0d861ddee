"""Exchange connections (encrypted credentials) and the paper exchange's accounts.

Money columns use the project's one precision (``apps.core.money.amount_field``).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import connection, models
from django.db.models import Q

from apps.core.money import ZERO, amount_field, float_residue_cleared
from apps.exchanges.catalog import exchange_choices
from apps.exchanges.crypto import EncryptedTextField, mask
from apps.orders.enums import OPEN_STATUSES, OrderSide, OrderStatus, OrderType


class ExchangeConnectionQuerySet(models.QuerySet):
    def alive(self) -> ExchangeConnectionQuerySet:
        return self.filter(deleted_at__isnull=True)


class ExchangeConnection(models.Model):
    """A user's API credentials for one exchange account. Soft-deleted (``deleted_at``)."""

    class Status(models.TextChoices):
        UNTESTED = "untested", "Not tested"
        CONNECTED = "connected", "Connected"
        DISCONNECTED = "disconnected", "Disconnected"
        ERROR = "error", "Error"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exchange_connections"
    )
    exchange = models.CharField(max_length=40, choices=exchange_choices(), help_text="ccxt exchange id")
    label = models.CharField(max_length=80)
    api_key = EncryptedTextField()
    api_secret = EncryptedTextField()
    passphrase = EncryptedTextField(blank=True, default="")
    testnet = models.BooleanField(default=False, help_text="use the exchange's sandbox/testnet")
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.UNTESTED)
    last_error = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # Permissions detected on the last successful test.
    can_trade_spot = models.BooleanField(default=False)
    can_trade_futures = models.BooleanField(default=False)
    read_only = models.BooleanField(default=False)
    can_withdraw = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = ExchangeConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "label"],
                condition=Q(deleted_at__isnull=True),
                name="exchanges_connection_unique_live_label",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.exchange}, key {self.api_key_masked})"

    def __repr__(self) -> str:
        # The default repr would be harmless, but be explicit: no secret in any repr.
        return f"<ExchangeConnection {self.pk} {self.exchange} key={self.api_key_masked}>"

    @property
    def api_key_masked(self) -> str:
        return mask(self.api_key)

    @property
    def has_passphrase(self) -> bool:
        return bool(self.passphrase)

    @property
    def permissions(self) -> list[str]:
        flags = {
            "spot": self.can_trade_spot,
            "futures": self.can_trade_futures,
            "read_only": self.read_only,
            "withdraw": self.can_withdraw,
        }
        return [name for name, on in flags.items() if on]

    @property
    def warnings(self) -> list[str]:
        if self.can_withdraw:
            return [
                "This API key can withdraw funds. A trading bot never needs that: create a key "
                "without withdrawal permission and replace this one."
            ]
        return []


class PaperAccountQuerySet(models.QuerySet):
    def trading(self) -> PaperAccountQuerySet:
        """The accounts that hold a user's (simulated) money: not a bot replay's throw-away one,
        which fills on past candles and must never be valued, monitored or matched live."""
        return self.filter(replay_id__isnull=True)


class PaperAccount(models.Model):
    """A simulated exchange account: one per user, or one per bot when a bot asks for its own.

    ``bot_id`` is a plain id (not a foreign key) so that the paper exchange does
    not depend on the bots app; the bots app owns the meaning of the number.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="paper_accounts"
    )
    bot_id = models.PositiveBigIntegerField(null=True, blank=True)
    # Set on the throw-away account of a bot replay (a forward test over stored candles): its
    # orders fill only on the replay's own clock, so the live matching jobs leave it alone.
    # A plain id for the same reason as ``bot_id``.
    replay_id = models.PositiveBigIntegerField(null=True, blank=True, unique=True)
    exchange = models.CharField(max_length=40, default="binance", help_text="whose prices fill the orders")
    initial_balances = models.JSONField(default=dict, help_text='{"USDT": "10000"}: what a reset restores')
    maker_fee = models.DecimalField(max_digits=12, decimal_places=8, default=Decimal("0.001"))
    taker_fee = models.DecimalField(max_digits=12, decimal_places=8, default=Decimal("0.001"))
    slippage = models.JSONField(
        default=dict, blank=True, help_text="backtest slippage spec; empty = 0.05% against the trader"
    )
    max_volume_fraction = models.DecimalField(
        max_digits=6,
        decimal_places=4,
        null=True,
        blank=True,
        default=Decimal("0.1"),
        help_text="a fill takes at most this fraction of a candle's volume (empty: no cap)",
    )

    class MarketType(models.TextChoices):
        SPOT = "spot", "Spot"
        FUTURES = "futures", "USD-M futures"

    market_type = models.CharField(
        max_length=10,
        choices=MarketType.choices,
        default=MarketType.SPOT,
        help_text="spot (BASE/QUOTE) or USD-M perpetual futures (BASE/QUOTE:QUOTE)",
    )
    funding_rate = models.DecimalField(
        max_digits=12,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="futures: a constant rate charged every 8 h; empty: the stored funding history",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    reset_at = models.DateTimeField(null=True, blank=True)

    objects = PaperAccountQuerySet.as_manager()

    class Meta:
        ordering = ["user_id", "bot_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(bot_id__isnull=True, replay_id__isnull=True),
                name="exchanges_paper_one_user_account",
            ),
            models.UniqueConstraint(
                fields=["user", "bot_id"],
                condition=Q(bot_id__isnull=False, replay_id__isnull=True),
                name="exchanges_paper_one_bot_account",
            ),
        ]

    def __str__(self) -> str:
        return f"paper {self.user_id}" + (f" bot {self.bot_id}" if self.bot_id else "")


class PaperBalance(models.Model):
    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="balances")
    asset = models.CharField(max_length=20)
    free = amount_field(default=ZERO)
    used = amount_field(default=ZERO, help_text="reserved by open orders")

    class Meta:
        ordering = ["account", "asset"]
        constraints = [
            models.UniqueConstraint(fields=["account", "asset"], name="exchanges_paper_balance_unique_asset"),
            models.CheckConstraint(
                condition=Q(free__gte=0) & Q(used__gte=0), name="exchanges_paper_balance_ge0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset} {self.free}+{self.used}"

    def save(self, *args, **kwargs) -> None:
        # On SQLite a release can leave a float's residue below zero (``money.FLOAT_RESIDUE``).
        self.free = float_residue_cleared(self.free, vendor=connection.vendor)
        self.used = float_residue_cleared(self.used, vendor=connection.vendor)
        super().save(*args, **kwargs)

    @property
    def total(self) -> Decimal:
        return self.free + self.used


class PaperOrderQuerySet(models.QuerySet):
    def open(self) -> PaperOrderQuerySet:
        return self.filter(status__in=OPEN_STATUSES)


class PaperOrder(models.Model):
    # The one order vocabulary (``apps.orders.enums``), as on real exchanges' orders.
    Side = OrderSide
    Type = OrderType
    Status = OrderStatus

    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="orders")
    client_order_id = models.CharField(max_length=64)
    symbol = models.CharField(max_length=60)
    base = models.CharField(max_length=20)
    quote = models.CharField(max_length=20)
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=20, choices=Type.choices)
    amount = amount_field()
    price = amount_field(null=True, blank=True, default=None)
    stop_price = amount_field(null=True, blank=True, default=None)
    filled = amount_field(default=ZERO)
    cost = amount_field(default=ZERO, help_text="quote value of the fills")
    fee = amount_field(default=ZERO)
    fee_asset = models.CharField(max_length=20, blank=True)
    reserved = amount_field(default=ZERO, help_text="balance still held for the unfilled part")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    reason = models.CharField(max_length=200, blank=True)
    triggered = models.BooleanField(default=False, help_text="stop-limit: stop reached, now a limit")
    trailing_percent = models.DecimalField(
        max_digits=8, decimal_places=4, null=True, blank=True, help_text="trailing stop: trail in percent"
    )
    extreme = amount_field(
        null=True, blank=True, default=None, help_text="trailing stop: best price since placement"
    )
    reduce_only = models.BooleanField(default=False)
    oco_group = models.CharField(
        max_length=64, blank=True, help_text="one-cancels-the-other: orders sharing a group"
    )
    # Candles with an open time at or after this (ms) can fill the order: an
    # order never fills on a candle that started before it was placed.
    rests_from = models.BigIntegerField()
    checked_until = models.BigIntegerField(help_text="open time (ms) after the last candle evaluated")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PaperOrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"], name="exchanges_paper_order_unique_client_id"
            ),
        ]
        indexes = [models.Index(fields=["account", "status"])]

    def __str__(self) -> str:
        return f"{self.side} {self.amount} {self.symbol} {self.type} ({self.status})"

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def average(self) -> Decimal | None:
        return self.cost / self.filled if self.filled else None


class PaperPosition(models.Model):
    """A futures position of a paper account in one symbol, with the symbol's leverage and margin mode.

    The row outlives the position (size 0), because leverage and margin mode are
    per-symbol settings, as on Binance USD-M. ``size`` is signed (short < 0).
    ``margin`` is the initial margin held in the quote balance's ``used``.
    """

    class MarginMode(models.TextChoices):
        ISOLATED = "isolated", "Isolated"
        CROSS = "cross", "Cross"

    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=60)
    quote = models.CharField(max_length=20)
    leverage = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("1"))
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices, default=MarginMode.ISOLATED)
    size = amount_field(default=ZERO)
    entry_price = amount_field(null=True, blank=True, default=None)
    margin = amount_field(default=ZERO)
    realized_pnl = amount_field(default=ZERO, help_text="closed P&L before fees and funding")
    funding = amount_field(default=ZERO, help_text="funding paid (received: negative)")
    checked_until = models.BigIntegerField(
        default=0, help_text="open time (ms) after the last candle checked"
    )
    funded_until = models.BigIntegerField(
        default=0, help_text="funding events up to this time (ms) are settled"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "symbol"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "symbol"], name="exchanges_paper_position_unique_symbol"
            ),
            models.CheckConstraint(condition=Q(margin__gte=0), name="exchanges_paper_position_margin_ge0"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.size} @ {self.entry_price} x{self.leverage} {self.margin_mode}"

    def save(self, *args, **kwargs) -> None:
        self.margin = float_residue_cleared(self.margin, vendor=connection.vendor)
        super().save(*args, **kwargs)

    @property
    def side(self) -> int:
        return (self.size > 0) - (self.size < 0)


class PaperTrade(models.Model):
    """One fill of a paper order."""

    order = models.ForeignKey(PaperOrder, on_delete=models.CASCADE, related_name="trades")
    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="trades")
    symbol = models.CharField(max_length=60)
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    # What a fill was: always given, no default that could hide a missing value.
    price = amount_field()
    amount = amount_field()
    cost = amount_field()
    fee = amount_field()
    fee_asset = models.CharField(max_length=20)
    maker = models.BooleanField()
    timestamp = models.BigIntegerField(help_text="ms; the candle's open time for candle fills")
    realized_pnl = amount_field(default=ZERO, help_text="futures: P&L this fill realized (before its fee)")
    liquidation = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["timestamp", "id"]

    def __str__(self) -> str:
        return f"{self.side} {self.amount} {self.symbol} @ {self.price}"
