"""Backtests in the product: user strategies (versioned), runs, their stored results, optimizations.

Storage choices (why): a run's curves are one value per candle, so a year of 1m
candles is 525,600 points. They are stored as compressed numpy blobs
(``apps.backtests.storage``) on ``BacktestResultData``, a few MB at most, read
and downsampled in milliseconds, never one row per point. Trades are rows
(``BacktestTrade``, bulk-inserted) because the API pages, filters, sorts and
streams them with SQL; money on them is Decimal.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from apps.core.jobs import Job, JobStatus
from apps.core.money import amount_field


class StrategyKind(models.TextChoices):
    BUILTIN = "builtin", "Built-in"
    USER = "user", "User code"


class Strategy(models.Model):
    """A strategy written by a user in Python; ``versions`` keep every saved source."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="strategies")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    style = models.CharField(max_length=10, default="signal")
    params_schema = models.JSONField(default=dict, blank=True)
    source = models.TextField()
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "strategies"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="backtests_strategy_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class StrategyVersion(models.Model):
    """One saved source of a user strategy; runs point at the exact version they used."""

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    style = models.CharField(max_length=10, default="signal")
    params_schema = models.JSONField(default=dict, blank=True)
    source = models.TextField()
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["strategy", "version"], name="backtests_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class ResearchJob(Job):
    """What runs and optimizations share: market, range, strategy reference (job state: ``Job``)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200, blank=True)
    strategy_kind = models.CharField(max_length=10, choices=StrategyKind.choices)
    strategy_name = models.CharField(max_length=100)
    # SET_NULL: deleting a user strategy keeps its runs (with name, version and code hash).
    strategy = models.ForeignKey(Strategy, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    strategy_version = models.ForeignKey(
        StrategyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    code_version = models.PositiveIntegerField(null=True, blank=True)
    code_hash = models.CharField(max_length=64, blank=True)
    params = models.JSONField(default=dict, blank=True)
    exchange = models.CharField(max_length=40)
    symbol = models.CharField(max_length=60)
    timeframe = models.CharField(max_length=3)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    initial_cash = amount_field()
    # The full engine ``BacktestConfig.to_dict()`` (fees, slippage, sizing, leverage, margin ...).
    config = models.JSONField(default=dict)

    # The line of the user's strategy code an error points at, if any.
    error_line = models.PositiveIntegerField(null=True, blank=True)
    # Futures: where funding comes from, as asked (specs.FUNDING_*: history, none, constant, series);
    # what the run actually used is said in its result info (``funding_source``, ``price_source``).
    funding_source = models.CharField(max_length=10, blank=True)
    # The lookahead check's report (``LookaheadReport.to_dict()``): of the run's strategy, or of an
    # optimization's best parameters. None until checked.
    lookahead = models.JSONField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def lookahead_verdict(self) -> str | None:
        """``ok``, ``lookahead_detected``, ``not_checked`` (the check failed to run), ``pending`` (an
        optimization's check follows its sweep), or None (not yet)."""
        return None if self.lookahead is None else self.lookahead.get("verdict")

    @property
    def error_info(self) -> dict[str, Any] | None:
        info = super().error_info
        if info is not None:
            info["line"] = self.error_line
        return info


class BacktestRun(ResearchJob):
    """One backtest: full config, job state, and headline metrics (for lists and sorting)."""

    status_event = "backtest.status"

    candles = models.PositiveIntegerField(null=True, blank=True)
    # Headline metrics copied out of the result so lists sort and aggregate in SQL.
    total_return = models.FloatField(null=True, blank=True)
    sharpe_ratio = models.FloatField(null=True, blank=True)
    max_drawdown = models.FloatField(null=True, blank=True)
    total_trades = models.IntegerField(null=True, blank=True)
    win_rate = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="backtests_run_progress_max"),
        ]

    def __str__(self) -> str:
        return f"Backtest #{self.pk} {self.strategy_name} {self.symbol} {self.timeframe}"

    @property
    def headline(self) -> dict | None:
        if self.status != JobStatus.COMPLETED:
            return None
        return {
            "total_return": self.total_return,
            "sharpe_ratio": self.sharpe_ratio,
            "max_drawdown": self.max_drawdown,
            "total_trades": self.total_trades,
            "win_rate": self.win_rate,
        }

    def event_payload(self) -> dict[str, Any]:
        return {**super().event_payload(), "headline": self.headline}


class BacktestResultData(models.Model):
    """The bulky part of a finished run, kept out of list queries."""

    run = models.OneToOneField(BacktestRun, on_delete=models.CASCADE, related_name="result", primary_key=True)
    metrics = models.JSONField(default=dict)
    summary = models.JSONField(default=dict)
    info = models.JSONField(default=dict)
    logs = models.TextField(blank=True)
    # zlib-compressed numpy arrays (see apps.backtests.storage): timestamps are delta-encoded int64.
    equity_blob = models.BinaryField()
    positions_blob = models.BinaryField()
    # ~4,000 extremes-preserving points of the curves: what charts ask for, read without the full blob.
    equity_preview = models.BinaryField(default=b"")
    points = models.PositiveIntegerField(default=0)
    monte_carlo = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"result of {self.run_id}"


class BacktestTrade(models.Model):
    """One round trip of a run (bulk-inserted when the run finishes)."""

    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="trades")
    n = models.PositiveIntegerField()
    entry_time = models.BigIntegerField(help_text="ms UTC")
    exit_time = models.BigIntegerField(help_text="ms UTC")
    side = models.CharField(max_length=5)
    size = amount_field()
    entry_price = amount_field()
    exit_price = amount_field()
    fees = amount_field()
    funding = amount_field()
    pnl = amount_field()
    return_pct = models.FloatField(null=True)
    mae = models.FloatField(null=True)
    mfe = models.FloatField(null=True)
    duration = models.FloatField(null=True)
    exit_reason = models.CharField(max_length=20)
    leverage = models.FloatField(null=True)

    class Meta:
        ordering = ["run", "n"]
        constraints = [models.UniqueConstraint(fields=["run", "n"], name="backtests_trade_unique_n")]
        indexes = [models.Index(fields=["run", "entry_time"])]

    def __str__(self) -> str:
        return f"trade {self.n} of run {self.run_id}"


class OptimizationKind(models.TextChoices):
    GRID = "grid", "Grid search"
    RANDOM = "random", "Random search"
    WALK_FORWARD = "walk_forward", "Walk-forward"


class Optimization(ResearchJob):
    """A parameter search (grid/random) or a walk-forward analysis, split into chunk tasks."""

    status_event = "optimization.status"
    # Chunks may wait in the queue behind other work between heartbeats: allow five periods.
    stale_after_factor = 5.0
    # Its chunks wait in the queue: it is cancelled at once, and each chunk stops when it sees that.
    cancel_running_at_once = True
    # Not run again after a fault: its chunk tasks carry no attempt (a chunk of the lost run still
    # queued would count into a new one), and its trials and counters would have to start over.
    auto_retry = False

    kind = models.CharField(max_length=12, choices=OptimizationKind.choices)
    space = models.JSONField(default=dict)
    objective = models.CharField(max_length=40, default="sharpe_ratio")
    maximize = models.BooleanField(default=True)
    samples = models.PositiveIntegerField(null=True, blank=True)
    seed = models.IntegerField(default=0)
    walk_forward_options = models.JSONField(default=dict, blank=True)
    # The combinations to evaluate, and the chunks (lists of [window, first, stop]) the workers take.
    plan = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    best_params = models.JSONField(null=True, blank=True)
    best_metrics = models.JSONField(null=True, blank=True)
    best_value = models.FloatField(null=True, blank=True)
    walk_forward = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"Optimization #{self.pk} {self.kind} {self.strategy_name}"

    @property
    def best(self) -> dict | None:
        if self.best_params is None:
            return None
        return {"params": self.best_params, "metrics": self.best_metrics, "value": self.best_value}

    @property
    def percent_done(self) -> int:
        if self.status == JobStatus.COMPLETED:
            return 100
        return int(100 * self.completed / self.total) if self.total else 0

    def event_payload(self) -> dict[str, Any]:
        best = None if self.best_params is None else {"params": self.best_params, "value": self.best_value}
        return {**super().event_payload(), "progress": self.percent_done, "best": best}


class OptimizationTrial(models.Model):
    """One parameter combination evaluated (in one walk-forward window, if any)."""

    optimization = models.ForeignKey(Optimization, on_delete=models.CASCADE, related_name="trials")
    index = models.PositiveIntegerField()
    window = models.PositiveIntegerField(null=True, blank=True)
    params = models.JSONField()
    metrics = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="the Celery worker that ran it")

    class Meta:
        ordering = ["optimization", "window", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["optimization", "window", "index"],
                name="backtests_trial_unique",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"trial {self.index} of optimization {self.optimization_id}"
