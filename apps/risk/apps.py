from __future__ import annotations

from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "apps.risk"
    label = "risk"
    verbose_name = "Risk"

    def ready(self) -> None:
        from apps.risk import receivers

        receivers.connect()
