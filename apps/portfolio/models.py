"""Portfolio history: the value of a user's accounts over time, and the money moved in and out.

``EquitySnapshot`` is the user's total (all accounts, in their display currency)
at one moment; ``AccountSnapshot`` the same moment for one account (a live
connection or a paper account) with its balances per asset. Both are written
by ``apps.portfolio.services.snapshots`` on the beat job and after fills, and
compacted into tiers (``Tier``): minute points are kept for a day, hourly for a
month, daily for ever, so a year is about 2,500 rows per account.

``CashFlow`` keeps deposits and withdrawals (a paper reset or top-up counts as
one) apart from trading P&L.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.money import ZERO, amount_field


class Tier(models.TextChoices):
    MINUTE = "minute", "Minute"
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class EquitySnapshot(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="equity_snapshots"
    )
    timestamp = models.DateTimeField(help_text="when the balances were valued")
    equity = amount_field(help_text="total account value in ``currency``")
    cash = amount_field(default=ZERO, help_text="balances held in ``currency`` itself")
    positions_value = amount_field(default=ZERO, help_text="value of every other asset and open position")
    currency = models.CharField(max_length=20, help_text="e.g. USDT")
    tier = models.CharField(max_length=6, choices=Tier.choices, default=Tier.MINUTE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "currency", "timestamp"], name="portfolio_snapshot_unique_time"
            ),
        ]
        # Every read is "this user's snapshots in a time range, newest first".
        indexes = [models.Index(fields=["owner", "-timestamp"], name="portfolio_snapshot_owner_time")]

    def __str__(self) -> str:
        return f"{self.equity} {self.currency} at {self.timestamp:%Y-%m-%d %H:%M}"


class AccountSnapshot(models.Model):
    """One account's value at one moment; ``assets`` maps asset -> {"amount", "price", "value"}.

    The per-asset amounts are Decimal strings in JSON (exact, and one row per
    account and time instead of one per asset keeps a year small).
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        "exchanges.ExchangeConnection", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    paper_account = models.ForeignKey(
        "exchanges.PaperAccount", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    timestamp = models.DateTimeField()
    currency = models.CharField(max_length=20)
    equity = amount_field()
    cash = amount_field(default=ZERO)
    positions_value = amount_field(default=ZERO)
    assets = models.JSONField(default=dict, blank=True)
    unpriced = models.JSONField(default=list, blank=True, help_text="assets no price was found for")
    tier = models.CharField(max_length=6, choices=Tier.choices, default=Tier.MINUTE)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(connection__isnull=False) & Q(paper_account__isnull=True))
                | (Q(connection__isnull=True) & Q(paper_account__isnull=False)),
                name="portfolio_account_snapshot_one_account",
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "-timestamp"], name="portfolio_acctsnap_owner_time"),
            models.Index(fields=["paper_account", "-timestamp"], name="portfolio_acctsnap_paper_time"),
            models.Index(fields=["connection", "-timestamp"], name="portfolio_acctsnap_live_time"),
        ]

    def __str__(self) -> str:
        return f"{self.account_key}: {self.equity} {self.currency} at {self.timestamp:%Y-%m-%d %H:%M}"

    @property
    def account_key(self) -> str:
        return f"paper:{self.paper_account_id}" if self.paper_account_id else f"live:{self.connection_id}"


class CashFlow(models.Model):
    """Money moved into (positive) or out of (negative) an account; not P&L."""

    class Kind(models.TextChoices):
        OPENING = "opening", "Opening balance"
        DEPOSIT = "deposit", "Deposit"
        WITHDRAWAL = "withdrawal", "Withdrawal"
        PAPER_RESET = "paper_reset", "Paper account reset"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        "exchanges.ExchangeConnection", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    paper_account = models.ForeignKey(
        "exchanges.PaperAccount", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    timestamp = models.DateTimeField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = amount_field(help_text="in ``currency``; negative for money taken out")
    currency = models.CharField(max_length=20)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(connection__isnull=False) & Q(paper_account__isnull=True))
                | (Q(connection__isnull=True) & Q(paper_account__isnull=False)),
                name="portfolio_cashflow_one_account",
            ),
        ]
        indexes = [models.Index(fields=["owner", "timestamp"], name="portfolio_cashflow_owner_time")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"

    @property
    def account_key(self) -> str:
        return f"paper:{self.paper_account_id}" if self.paper_account_id else f"live:{self.connection_id}"
