from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Platform plumbing shared by every app: API errors, pagination, live events, health."""

    name = "apps.core"
    label = "core"
    verbose_name = "Platform"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from apps.core import signals  # noqa: F401
        from apps.core.api import response_cache
        from apps.core.observability import celery_hooks  # noqa: F401 - task metrics, log context

        connection_created.connect(response_cache.install, dispatch_uid="response_cache")
