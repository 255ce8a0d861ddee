"""Per-user risk limits that the risk engine (a later issue) enforces before every order."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.money import amount_field
from apps.exchanges.crypto import EncryptedTextField, mask

MAX_LEVERAGE_CAP = Decimal("125")  # the highest leverage any supported exchange offers


class RiskProfile(models.Model):
    """One per user. An empty money limit means "no limit"; the kill switch blocks every new order."""

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_profile"
    )
    currency = models.CharField(max_length=20, default="USDT", help_text="currency of the money limits")
    max_position_notional = amount_field(
        null=True, blank=True, help_text="largest position value per market; empty = no limit"
    )
    max_daily_loss = amount_field(
        null=True,
        blank=True,
        help_text="new orders stop after losing more than this since your local midnight; empty = no limit",
    )
    # 1 = spot only: leverage is something a user opts into, not a default.
    max_leverage = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("1"))
    max_open_orders = models.PositiveIntegerField(default=50)
    kill_switch = models.BooleanField(default=False, help_text="when on, no bot or user may place an order")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(max_position_notional__isnull=True) | Q(max_position_notional__gt=0),
                name="risk_profile_position_gt0",
            ),
            models.CheckConstraint(
                condition=Q(max_daily_loss__isnull=True) | Q(max_daily_loss__gt=0),
                name="risk_profile_daily_loss_gt0",
            ),
            models.CheckConstraint(
                condition=Q(max_leverage__gte=1) & Q(max_leverage__lte=MAX_LEVERAGE_CAP),
                name="risk_profile_leverage_range",
            ),
            models.CheckConstraint(condition=Q(max_open_orders__gte=1), name="risk_profile_open_orders_ge1"),
        ]

    def __str__(self) -> str:
        return f"risk profile of {self.owner}" + (" (kill switch ON)" if self.kill_switch else "")


class LimitKind(models.TextChoices):
    """What a ``RiskLimit`` bounds; ``docs/risk.md`` defines each measure and its boundary."""

    POSITION_QUANTITY = "position_quantity", "Max position size (base quantity)"
    POSITION_NOTIONAL = "position_notional", "Max position size (notional)"
    ORDER_NOTIONAL = "order_notional", "Max order notional"
    OPEN_ORDERS = "open_orders", "Max open orders"
    LEVERAGE = "leverage", "Max leverage (gross position value / equity)"
    ASSET_EXPOSURE = "asset_exposure", "Max exposure per asset (fraction of equity)"
    TOTAL_EXPOSURE = "total_exposure", "Max total exposure (fraction of equity)"
    DAILY_LOSS = "daily_loss", "Daily loss limit"
    DRAWDOWN = "drawdown", "Max drawdown from peak equity (fraction)"
    LOSING_STREAK = "losing_streak", "Cool-down after consecutive losing trades"


class LimitAction(models.TextChoices):
    REJECT = "reject", "Reject the order"
    PAUSE_BOT = "pause_bot", "Reject and pause the bot"
    STOP_ALL_BOTS = "stop_all_bots", "Reject and stop all bots"


class RiskLimit(models.Model):
    """One limit of a user, optionally narrowed to a bot, an account and/or a market.

    ``value`` is in the profile's currency for money kinds, a fraction for
    exposure and drawdown (0.5 = 50% of equity), a count for open orders and the
    losing streak, a multiple for leverage. Empty scope fields mean "all".
    """

    Kind = LimitKind
    Action = LimitAction

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_limits")
    kind = models.CharField(max_length=20, choices=LimitKind.choices)
    value = amount_field()
    action = models.CharField(max_length=16, choices=LimitAction.choices, default=LimitAction.REJECT)
    bot = models.ForeignKey("bots.Bot", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    paper_account = models.ForeignKey(
        "exchanges.PaperAccount", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    connection = models.ForeignKey(
        "exchanges.ExchangeConnection", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    symbol = models.CharField(max_length=60, blank=True, help_text="one market; empty = every market")
    asset = models.CharField(max_length=20, blank=True, help_text="asset exposure: one asset; empty = each")
    cooldown_minutes = models.PositiveIntegerField(
        default=60, help_text="losing streak: how long new orders wait after the streak"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(value__gt=0), name="risk_limit_value_gt0"),
            models.CheckConstraint(
                condition=Q(paper_account__isnull=True) | Q(connection__isnull=True),
                name="risk_limit_one_account",
            ),
        ]
        indexes = [models.Index(fields=["owner", "enabled"], name="risk_limit_owner_enabled")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.value.normalize():f} ({self.owner_id})"

    @property
    def account_key(self) -> str:
        if self.paper_account_id:
            return f"paper:{self.paper_account_id}"
        if self.connection_id:
            return f"live:{self.connection_id}"
        return ""


class RiskState(models.Model):
    """Running figures per user that no single row holds: today's realized P&L, peak equity, losing streak.

    Updated on every position change (``apps.risk.tracking``) and by the monitor;
    ``day`` is the user's local date, so "today" starts at their midnight.
    """

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_state"
    )
    day = models.DateField(null=True, blank=True)
    day_realized = amount_field(default=Decimal("0"))
    day_start_unrealized = amount_field(default=Decimal("0"))
    peak_equity = amount_field(null=True, blank=True)
    consecutive_losses = models.PositiveIntegerField(default=0)
    last_loss_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"risk state of {self.owner_id}"


class RiskSnapshot(models.Model):
    """The monitor's figures for one user; one row per user per ``SNAPSHOT_BUCKET_SECONDS`` (last value wins)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_snapshots"
    )
    bucket = models.DateTimeField(help_text="start of the 15-minute bucket this row covers")
    timestamp = models.DateTimeField()
    currency = models.CharField(max_length=20)
    equity = amount_field(null=True, blank=True)
    peak_equity = amount_field(null=True, blank=True)
    gross_exposure = amount_field(default=Decimal("0"))
    net_exposure = amount_field(default=Decimal("0"))
    exposure = models.JSONField(default=dict, help_text='{"BTC": "1234.5"}: signed value per asset')
    leverage = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    margin_level = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)
    liquidation_distance = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="nearest, fraction of the mark price",
    )
    daily_pnl = amount_field(default=Decimal("0"))
    drawdown = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    var_95 = amount_field(null=True, blank=True)
    var_99 = amount_field(null=True, blank=True)
    cvar_95 = amount_field(null=True, blank=True)
    cvar_99 = amount_field(null=True, blank=True)
    var_days = models.PositiveIntegerField(default=0, help_text="daily returns the VaR is computed from")
    score = models.PositiveSmallIntegerField()
    components = models.JSONField(default=dict, help_text="the score's parts, see docs/risk.md")

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "bucket"], name="risk_snapshot_unique_bucket"),
            models.CheckConstraint(
                condition=Q(score__gte=1) & Q(score__lte=100), name="risk_snapshot_score_range"
            ),
        ]
        indexes = [models.Index(fields=["owner", "-timestamp"], name="risk_snapshot_owner_time")]

    def __str__(self) -> str:
        return f"risk {self.score} for {self.owner_id} at {self.timestamp:%Y-%m-%d %H:%M}"


class AlertSeverity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class RiskAlertQuerySet(models.QuerySet):
    def active(self) -> RiskAlertQuerySet:
        return self.filter(resolved_at__isnull=True)


class RiskAlert(models.Model):
    """A breached (or nearly breached) limit. One active row per ``key`` while the condition lasts."""

    Severity = AlertSeverity

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_alerts")
    limit = models.ForeignKey(
        RiskLimit, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    key = models.CharField(max_length=120, help_text="what the alert is about; the dedup key")
    kind = models.CharField(max_length=20, help_text="the limit kind (or kill_switch)")
    severity = models.CharField(max_length=8, choices=AlertSeverity.choices)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, help_text="the numbers: measured value, limit, scope")
    action = models.CharField(max_length=16, blank=True, help_text="the action taken (limit action)")
    occurrences = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="when the condition ended")
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    objects = RiskAlertQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "key"],
                condition=Q(resolved_at__isnull=True),
                name="risk_alert_one_active_per_key",
            ),
        ]
        indexes = [models.Index(fields=["owner", "-created_at"], name="risk_alert_owner_time")]

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"

    @property
    def active(self) -> bool:
        return self.resolved_at is None


# ------------------------------------------------------------- notifications
class NotificationEvent(models.TextChoices):
    """What a notification channel can subscribe to (``test`` is the "send test" action's, always sent)."""

    RISK_ALERT = "risk_alert", "Risk alerts"
    FILL = "fill", "Fills"
    BOT_ERROR = "bot_error", "Bot errors"
    BOT_STOPPED = "bot_stopped", "Bot stopped"
    KILL_SWITCH = "kill_switch", "Kill switch"
    TEST = "test", "Test message"


SUBSCRIBABLE_EVENTS = [e for e in NotificationEvent.values if e != NotificationEvent.TEST]


class NotificationChannel(models.Model):
    """Where a user's notifications go: an email address, a signed webhook or a Telegram chat.

    ``secret`` is the webhook's signing secret or the Telegram bot token, encrypted
    at rest; the API, the admin and the logs only ever show it masked.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"
        TELEGRAM = "telegram", "Telegram"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_channels"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=100)
    events = models.JSONField(default=list, help_text="the NotificationEvent values this channel receives")
    enabled = models.BooleanField(default=True)
    email = models.EmailField(blank=True, help_text="email: the address")
    url = models.URLField(max_length=500, blank=True, help_text="webhook: the https URL that receives a POST")
    secret = EncryptedTextField(blank=True, help_text="webhook: signing secret; telegram: bot token")
    chat_id = models.CharField(max_length=64, blank=True, help_text="telegram: the chat to write to")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="notification_channel_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} channel {self.name!r} of {self.owner_id}"

    @property
    def masked_secret(self) -> str:
        return mask(self.secret)


class NotificationDelivery(models.Model):
    """One notification for one channel, with every attempt to deliver it (``attempts_log``)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_deliveries"
    )
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=20, choices=NotificationEvent.choices)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # [{"at", "ok", "status_code", "error", "duration_ms"}, ...] oldest first
    attempts_log = models.JSONField(default=list)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="notif_delivery_owner_recent")]
        verbose_name_plural = "notification deliveries"

    def __str__(self) -> str:
        return f"{self.event} to channel {self.channel_id}: {self.status}"


# ---------------------------------------------------------------- kill switch
class KillSwitchActivation(models.Model):
    """One press of the kill switch and everything it did, until it is released (the audit).

    ``bots_stopped``/``orders_cancelled`` are ids; ``positions_closed`` is
    ``[{"position", "order", "symbol"}]``; ``failures`` holds what still failed on
    the last attempt (``[{"action", "target", "account", "error"}]``) and is retried.
    """

    class Retry(models.TextChoices):
        NONE = "none", "Nothing to retry"
        SCHEDULED = "scheduled", "Retry scheduled"
        GAVE_UP = "gave_up", "Gave up retrying"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="kill_switch_activations"
    )
    engaged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    engaged_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=20, default="api", help_text="api, page or admin")
    close_positions = models.BooleanField(default=False)
    bots_stopped = models.JSONField(default=list)
    orders_cancelled = models.JSONField(default=list)
    positions_closed = models.JSONField(default=list)
    failures = models.JSONField(default=list)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    retry = models.CharField(max_length=10, choices=Retry.choices, default=Retry.NONE)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-engaged_at", "-pk"]
        constraints = [
            # At most one press is in force per user: a second press finds it (idempotent).
            models.UniqueConstraint(
                fields=["owner"], condition=Q(released_at__isnull=True), name="kill_switch_one_active"
            ),
        ]

    def __str__(self) -> str:
        state = "released" if self.released_at else "active"
        return f"kill switch of {self.owner_id} at {self.engaged_at:%Y-%m-%d %H:%M} ({state})"

    @property
    def is_active(self) -> bool:
        return self.released_at is None
