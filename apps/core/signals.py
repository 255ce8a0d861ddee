from __future__ import annotations

from django.db.models.signals import post_migrate
from django.dispatch import receiver


@receiver(post_migrate)
def install_periodic_tasks(sender, app_config=None, **kwargs):
    # post_migrate fires once per app; install once, after django_celery_beat's tables exist.
    if app_config is None or app_config.label != "django_celery_beat":
        return
    from apps.core.schedules import install_schedules

    install_schedules()
