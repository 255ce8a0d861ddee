"""Trading bots: a strategy with parameters, bound to one market, run on paper or live.

A bot references its strategy the way a backtest run does (``ResearchJob``): a
built-in by name, or one of the owner's strategies pinned to a version. Its
status follows the lifecycle enforced by ``apps.bots.services.lifecycle``;
``BotEvent`` rows are its log.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q, TextChoices

from apps.backtests.models import StrategyKind
from apps.core.jobs import Job
from apps.core.money import amount_field
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
        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        STOPPING = "stopping", "Stopping"
        ERROR = "error", "Error"

    class Source(TextChoices):
        STRATEGY = "strategy", "Strategy"
        WEBHOOK = "webhook", "Webhook signals"

    class MarginMode(TextChoices):
        ISOLATED = "isolated", "Isolated"
        CROSS = "cross", "Cross"

    ACTIVE_STATUSES = (Status.RUNNING, Status.PAUSED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bots")
    name = models.CharField(max_length=80)
    # What decides the trades: the strategy below, ticked by the loop on every closed
    # candle, or alerts posted to the bot's secret webhook (no strategy, no ticks).
    source = models.CharField(
        max_length=8, choices=Source.choices, default=Source.STRATEGY, help_text="strategy or webhook"
    )
    # The strategy reference of ``ResearchJob``: ``strategy`` is the name (built-in
    # registry name, or the user strategy's name at the pinned version).
    strategy_kind = models.CharField(
        max_length=10, choices=StrategyKind.choices, default=StrategyKind.BUILTIN
    )
    strategy = models.CharField(
        max_length=100, help_text="built-in registry name, or the user strategy's name"
    )
    # PROTECT: a bot must never lose the code it trades; delete the bot first.
    user_strategy = models.ForeignKey(
        "backtests.Strategy", null=True, blank=True, on_delete=models.PROTECT, related_name="bots"
    )
    strategy_version = models.ForeignKey(
        "backtests.StrategyVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="bots"
    )
    code_hash = models.CharField(max_length=64, blank=True)
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
    allocated_capital = amount_field(default=1000, help_text="quote currency the bot may use")
    sizing = models.JSONField(
        default=dict, blank=True, help_text="engine sizing spec; empty: 100% of the allocated equity"
    )
    # Futures only (a BASE/QUOTE:SETTLE symbol): set on the exchange while the bot is flat;
    # spot bots keep 1 and isolated.
    leverage = models.DecimalField(
        max_digits=6, decimal_places=2, default=1, help_text="futures leverage (1 for spot)"
    )
    margin_mode = models.CharField(
        max_length=8, choices=MarginMode.choices, default=MarginMode.ISOLATED, help_text="futures margin mode"
    )
    stop_loss = models.FloatField(null=True, blank=True, help_text="default stop-loss, fraction of entry")
    take_profit = models.FloatField(null=True, blank=True, help_text="default take-profit, fraction")
    trailing_stop = models.FloatField(null=True, blank=True, help_text="default trailing stop, fraction")
    warmup = models.PositiveIntegerField(
        null=True, blank=True, help_text="closed candles the strategy sees per tick (empty: the default)"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.STOPPED)
    error = models.TextField(blank=True, help_text="why the bot is in error")
    # The loop's bookkeeping: the open time (ms) of the last candle fully ticked; the
    # candle a worker claimed and until when the claim holds (a dead worker's claim
    # expires and another worker ticks the same candle with the same client order ids).
    last_candle_ms = models.BigIntegerField(null=True, blank=True)
    tick_candle_ms = models.BigIntegerField(null=True, blank=True)
    tick_lease_until = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True)
    # An event strategy's own state between ticks (``services/strategy_state.py``); reset on start.
    strategy_state = models.JSONField(null=True, blank=True, editable=False)
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
            models.CheckConstraint(
                condition=Q(strategy_kind="builtin") | Q(strategy_version__isnull=False),
                name="bots_bot_user_strategy_pinned",
            ),
            models.CheckConstraint(
                condition=Q(source="strategy") | Q(strategy="", strategy_version__isnull=True),
                name="bots_bot_webhook_has_no_strategy",
            ),
            models.CheckConstraint(condition=Q(leverage__gte=1), name="bots_bot_leverage_ge1"),
        ]
        indexes = [
            models.Index(fields=["owner", "status"]),
            models.Index(fields=["status", "last_candle_ms"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.strategy or self.source} {self.symbol} {self.timeframe}, {self.mode})"

    @property
    def is_futures(self) -> bool:
        """A perpetual futures market (ccxt ``BASE/QUOTE:SETTLE``): the bot may go short."""
        return ":" in self.symbol

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def code_version(self) -> int | None:
        return self.strategy_version.version if self.strategy_version_id else None


class BotEvent(models.Model):
    """One line of a bot's log: what it decided, ordered, got filled, failed at, or changed status."""

    class Kind(models.TextChoices):
        LIFECYCLE = "lifecycle", "Lifecycle"
        SIGNAL = "signal", "Signal"
        ORDER = "order", "Order"
        FILL = "fill", "Fill"
        ERROR = "error", "Error"

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["bot", "-id"])]

    def __str__(self) -> str:
        return f"{self.bot_id} {self.kind}: {self.message}"


class BotReplay(Job):
    """A forward test: the bot's strategy run candle by candle over stored candles, at full speed.

    The replay ticks the bot's own code (the broker, order placement through
    ``order_place``, the paper exchange's fills) on a paper account of its own,
    priced by a ``ReplayPriceSource``; its trades equal a backtest of the same
    strategy, parameters and candles. ``result``: the trades, the engine's
    metrics on its equity curve, an equity summary and the config a backtest
    needs to reproduce it.
    """

    status_event = "bot.replay"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="replays")
    start = models.DateTimeField(help_text="open time of the first candle replayed")
    end = models.DateTimeField(help_text="open time of the last candle replayed")
    candles = models.PositiveIntegerField(null=True, blank=True, help_text="candles in the period")
    # What the bot looked like when the replay was asked for: later edits do not change it.
    strategy = models.CharField(max_length=100)
    # A user strategy's code as pinned then (SET_NULL: the replay's result outlives its code).
    strategy_version = models.ForeignKey(
        "backtests.StrategyVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["bot", "-created_at"])]

    def __str__(self) -> str:
        return f"replay {self.pk} of bot {self.bot_id} ({self.status})"

    def event_payload(self) -> dict:
        return {**super().event_payload(), "bot_id": self.bot_id}


class BotWebhook(models.Model):
    """The secret of a webhook bot's signal URL. Only a hash is stored: the full URL is
    shown once, when the token is created or rotated; ``token_hint`` (its first
    characters) lets the owner tell URLs apart without revealing them."""

    bot = models.OneToOneField(Bot, on_delete=models.CASCADE, related_name="webhook")
    token_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the token (hex)")
    token_hint = models.CharField(max_length=8, help_text="the token's first characters")
    rotated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"webhook of bot {self.bot_id} ({self.token_hint}…)"

    @staticmethod
    def hash_token(token: str) -> str:
        """The stored form of a token. A plain sha256 suffices: the token is 256 random bits."""
        return hashlib.sha256(token.encode()).hexdigest()


class BotSignal(models.Model):
    """One request received on a bot's webhook, whatever became of it."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        DUPLICATE = "duplicate", "Duplicate"

    class Action(models.TextChoices):
        ENTER_LONG = "enter_long", "Enter long"
        ENTER_SHORT = "enter_short", "Enter short"
        EXIT = "exit", "Exit"
        EXIT_LONG = "exit_long", "Exit long"
        EXIT_SHORT = "exit_short", "Exit short"

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="signals")
    received_at = models.DateTimeField()
    payload = models.JSONField(default=dict, blank=True, help_text="the body as received (large ones cut)")
    action = models.CharField(max_length=12, choices=Action.choices, blank=True)
    signal_id = models.CharField(max_length=100, blank=True)
    signal_time = models.DateTimeField(null=True, blank=True, help_text="the sender's timestamp")
    # What makes two deliveries "the same signal": the signal id, else a hash of the
    # body (which then carries a timestamp). Empty for bodies too broken to have one.
    dedup_key = models.CharField(max_length=120, blank=True)
    outcome = models.CharField(max_length=9, choices=Outcome.choices)
    reason = models.CharField(max_length=500, blank=True)
    client_order_ids = models.JSONField(default=list, blank=True)
    order_ids = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # The backstop of replay safety: one non-duplicate signal per key and bot.
            models.UniqueConstraint(
                fields=["bot", "dedup_key"],
                condition=~Q(outcome="duplicate") & ~Q(dedup_key=""),
                name="bots_botsignal_unique_key",
            ),
        ]
        indexes = [models.Index(fields=["bot", "-id"])]

    def __str__(self) -> str:
        return f"{self.bot_id} {self.action or '?'}: {self.outcome}"
