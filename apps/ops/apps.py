from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "apps.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Celery's signals: the dead-letter list and the periodic jobs' last outcome (in workers,
        # the embedded worker and eager runs alike, since every one of them loads the Django apps).
        from apps.ops import receivers

        receivers.connect()
