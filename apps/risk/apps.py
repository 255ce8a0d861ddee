from __future__ import annotations

from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "apps.risk"
    label = "risk"
    verbose_name = "Risk"

    def ready(self) -> None:
        # ``tracking`` connects its position, fill and limit receivers on import; ``receivers``
        # (notifications: fills, bot errors/stops, risk alerts) when asked.
        from apps.risk import receivers, tracking  # noqa: F401

        receivers.connect()
