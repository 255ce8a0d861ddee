from __future__ import annotations

from django.apps import AppConfig


class PortfolioConfig(AppConfig):
    name = "apps.portfolio"
    label = "portfolio"
    verbose_name = "Portfolio"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from apps.portfolio.receivers import snapshot_after_fill

        post_save.connect(
            snapshot_after_fill, sender="orders.Fill", dispatch_uid="portfolio_snapshot_after_fill"
        )
