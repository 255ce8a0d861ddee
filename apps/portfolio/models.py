"""Portfolio history: the value of a user's accounts over time.

Snapshots are written by the portfolio task (a later issue) from exchange
balances; analytics (returns, drawdown) are computed from them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.money import amount_field


class EquitySnapshot(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="equity_snapshots"
    )
    timestamp = models.DateTimeField(help_text="when the balances were valued")
    equity = amount_field(help_text="total account value in ``currency``")
    currency = models.CharField(max_length=20, help_text="e.g. USDT")
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
