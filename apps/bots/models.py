"""Trading bots: a strategy with parameters, bound to one market, run on paper or live.

The bot runtime (start/stop, signals, orders) is a later issue; this model holds
the configuration it will run and the status it will report.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.exchanges.catalog import exchange_choices
from apps.marketdata.timeframes import TIMEFRAME_CHOICES


class BotQuerySet(models.QuerySet):
    def active(self) -> BotQuerySet:
        """Bots the runtime is responsible for (running or paused)."""
        return self.filter(status__in=Bot.ACTIVE_STATUSES)


class Bot(models.Model):
    class Mode(models.TextChoices):
        PAPER = "paper", "Paper"
        LIVE = "live", "Live"

    class Status(models.TextChoices):
        STOPPED = "stopped", "Stopped"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        ERROR = "error", "Error"

    ACTIVE_STATUSES = (Status.RUNNING, Status.PAUSED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bots")
    name = models.CharField(max_length=80)
    strategy = models.CharField(max_length=100, help_text="name in the built-in strategy registry")
    params = models.JSONField(
        default=dict, blank=True, help_text="validated and defaulted strategy parameters"
    )
    exchange = models.CharField(max_length=40, choices=exchange_choices(), help_text="ccxt exchange id")
    symbol = models.CharField(max_length=60, help_text="ccxt unified symbol, e.g. BTC/USDT")
    timeframe = models.CharField(max_length=4, choices=TIMEFRAME_CHOICES)
    mode = models.CharField(max_length=5, choices=Mode.choices, default=Mode.PAPER)
    # RESTRICT (not PROTECT): deleting the user cascades to both the bot and the
    # connection, which RESTRICT allows; deleting only a connection a bot uses is refused.
    connection = models.ForeignKey(
        "exchanges.ExchangeConnection",
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="bots",
        help_text="the exchange account a live bot trades on",
    )
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.STOPPED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BotQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="bots_bot_unique_name"),
            models.CheckConstraint(
                condition=Q(mode="paper") | Q(connection__isnull=False),
                name="bots_bot_live_needs_connection",
            ),
        ]
        indexes = [models.Index(fields=["owner", "status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.strategy} {self.symbol} {self.timeframe}, {self.mode})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES
