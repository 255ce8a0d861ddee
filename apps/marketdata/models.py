"""Market data: the exchange/market catalog, the candle store and watchlists."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models

from apps.core.jobs import Job
from apps.core.money import amount_field
from apps.marketdata.timeframes import TIMEFRAME_CHOICES, ms_to_datetime


class Exchange(models.Model):
    slug = models.SlugField(max_length=40, unique=True, help_text="ccxt exchange id, e.g. binance")
    name = models.CharField(max_length=80)
    is_active = models.BooleanField(default=True)
    markets_loaded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class MarketQuerySet(models.QuerySet):
    def active(self) -> MarketQuerySet:
        return self.filter(active=True)


class Market(models.Model):
    class Type(models.TextChoices):
        SPOT = "spot", "Spot"
        FUTURE = "future", "Future"
        SWAP = "swap", "Perpetual swap"

    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="markets")
    symbol = models.CharField(max_length=60, help_text="ccxt unified symbol, e.g. BTC/USDT")
    exchange_symbol = models.CharField(max_length=60, blank=True, help_text="the exchange's id, e.g. BTCUSDT")
    base = models.CharField(max_length=20)
    quote = models.CharField(max_length=20)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.SPOT)
    # Catalog amounts are exact exchange values at the project's amount precision
    # (apps.core.money). Precision is stored as the step ("0.01"), whatever ccxt's precisionMode.
    precision_amount = amount_field(null=True, blank=True)
    precision_price = amount_field(null=True, blank=True)
    min_amount = amount_field(null=True, blank=True)
    min_notional = amount_field(null=True, blank=True)
    maker_fee = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    taker_fee = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MarketQuerySet.as_manager()

    class Meta:
        ordering = ["exchange__slug", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["exchange", "symbol"], name="marketdata_market_unique_symbol"),
        ]
        indexes = [models.Index(fields=["quote", "type"])]

    def __str__(self) -> str:
        return f"{self.exchange.slug}:{self.symbol}"


class OhlcvRow(models.Model):
    """The columns of a stored candle (``store`` reads and writes them in bulk, both tables alike)."""

    timeframe = models.CharField(max_length=3, choices=TIMEFRAME_CHOICES)
    open_time = models.BigIntegerField(help_text="open time, ms since the Unix epoch (UTC)")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField()

    class Meta:
        abstract = True


class Candle(OhlcvRow):
    """One OHLCV candle.

    Storage choice: float8 (``double precision``), not ``numeric``. Candles feed
    analytics (indicators, resampling, backtests), which all compute in float64;
    float8 is 8 fixed bytes that COPY/numpy read without a per-value Decimal
    conversion (numeric costs ~10x on the bulk reads that matter here). A
    double holds 15-17 significant digits, so every exchange price and volume
    (at most ~15 digits) round-trips exactly to its shortest decimal string:
    ``Decimal(repr(x))`` gives back the exchange's value. Money that is *owned*
    (orders, fills, balances) stays ``numeric``/Decimal in the apps that own it.

    ``open_time`` is the candle's open time in integer milliseconds since the
    epoch (UTC), as exchanges send it: no time-zone conversion on the hot read
    path and a direct int64 numpy column. ``open_at`` gives the datetime.
    """

    # No separate FK index: the unique (market, timeframe, open_time) index
    # leads with market and serves every lookup; one index less to maintain on
    # bulk inserts, and the planner cannot pick it over the range index.
    # No database FK constraint either: its deferred per-row check cost ~10 s
    # at commit for a one-year 1m import (525,600 trigger events). Rows are
    # only written by ``store.upsert`` for a market it just resolved, and
    # deleting a market still cascades (Django's collector deletes candles).
    market = models.ForeignKey(
        Market, on_delete=models.CASCADE, related_name="candles", db_index=False, db_constraint=False
    )

    class Meta:
        ordering = ["market", "timeframe", "open_time"]
        constraints = [
            # The unique index is also *the* read index: every range read is
            # market = ? AND timeframe = ? AND open_time BETWEEN ..., an index
            # range scan in time order with no extra sort.
            models.UniqueConstraint(
                fields=["market", "timeframe", "open_time"], name="marketdata_candle_unique_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.market_id} {self.timeframe} {self.open_at:%Y-%m-%d %H:%M}"

    @property
    def open_at(self) -> datetime:
        return ms_to_datetime(self.open_time)

    @property
    def exchange(self) -> Exchange:
        return self.market.exchange


class MarkCandle(OhlcvRow):
    """One mark-price candle of a derivatives market (ccxt ``fetch_ohlcv(..., params={"price": "mark"})``).

    The exchange liquidates and values open positions at the mark price, so
    futures backtests use these when stored (``engine.Candles.with_mark``). Same
    layout and storage choices as ``Candle`` (float8, ms open times, no FK
    constraint, the unique index as the read index), so ``store`` reads and
    writes both tables with the same bulk paths; volume is 0 (mark prices
    have none).
    """

    market = models.ForeignKey(
        Market, on_delete=models.CASCADE, related_name="mark_candles", db_index=False, db_constraint=False
    )

    class Meta:
        ordering = ["market", "timeframe", "open_time"]
        constraints = [
            models.UniqueConstraint(
                fields=["market", "timeframe", "open_time"], name="marketdata_markcandle_unique_time"
            ),
        ]

    def __str__(self) -> str:
        return f"mark {self.market_id} {self.timeframe} {ms_to_datetime(self.open_time):%Y-%m-%d %H:%M}"


class FundingRate(models.Model):
    """One funding event of a perpetual market: the rate charged at ``funding_time``.

    A positive rate means longs pay shorts ``size x mark x rate``. The rate is
    stored exactly as the exchange sends it (a fraction, ``0.00010000`` is
    0.01%); ``mark_price`` is the mark price the exchange settled at, when sent.
    """

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="funding_rates", db_index=False)
    funding_time = models.BigIntegerField(help_text="funding time, ms since the Unix epoch (UTC)")
    rate = models.DecimalField(max_digits=20, decimal_places=12)
    mark_price = amount_field(null=True, blank=True)

    class Meta:
        ordering = ["market", "funding_time"]
        constraints = [
            models.UniqueConstraint(fields=["market", "funding_time"], name="marketdata_funding_unique_time"),
        ]

    def __str__(self) -> str:
        return f"{self.market_id} funding {self.rate} at {self.funding_at:%Y-%m-%d %H:%M}"

    @property
    def funding_at(self) -> datetime:
        return ms_to_datetime(self.funding_time)


class Subscription(models.Model):
    """A market on a user's watchlist; watched markets are what the price poller polls."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions")
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="subscriptions")
    timeframe = models.CharField(max_length=3, choices=TIMEFRAME_CHOICES, default="1h")
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "market"], name="marketdata_subscription_unique_market"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} watches {self.market}"


class ImportJob(Job):
    """A candle import or download started from the dashboard/API: one of the platform's ``Job`` models.

    Status, integer progress, error code and message, heartbeat, cancel and the
    reaper come from ``apps.core.jobs``; progress and status changes arrive as
    ``marketdata.job`` events.
    """

    status_event = "marketdata.job"
    owner_field = "user"

    class Kind(models.TextChoices):
        IMPORT = "import", "Import file"
        DOWNLOAD = "download", "Download via ccxt"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    exchange = models.CharField(max_length=40)
    symbol = models.CharField(max_length=60)
    timeframe = models.CharField(max_length=3, choices=TIMEFRAME_CHOICES)
    params = models.JSONField(default=dict, blank=True)
    inserted = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    message = models.TextField(blank=True, help_text="the outcome in words (what was stored)")
    error_detail = models.TextField(blank=True, help_text="technical detail of a failure, for admins")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.exchange}:{self.symbol} {self.timeframe} ({self.status})"

    def event_payload(self) -> dict:
        return {
            **super().event_payload(),
            "kind": self.kind,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "inserted": self.inserted,
            "message": self.message or self.error,
        }
