from __future__ import annotations

from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "apps.risk"
    label = "risk"
    verbose_name = "Risk"

    def ready(self) -> None:
        from apps.risk import tracking  # noqa: F401 - connects the position, fill and limit receivers
