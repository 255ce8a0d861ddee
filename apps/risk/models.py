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
        help_text="new orders stop after losing this much in a UTC day; empty = no limit",
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
