from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Platform plumbing shared by every app: API errors, pagination, live events, health."""

    name = "apps.core"
    label = "core"
    verbose_name = "Platform"

    def ready(self) -> None:
        from apps.core import signals  # noqa: F401
        from apps.core.observability import celery_hooks  # noqa: F401 - task metrics, log context
