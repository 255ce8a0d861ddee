"""Periodic tasks are defined in code and installed into django-celery-beat.

Each app's ``tasks.py`` may declare ``PERIODIC_TASKS``: a list of
``Schedule(name, task, seconds, kwargs)``. ``manage.py install_schedules`` (also
run after every ``migrate``) creates or updates one ``PeriodicTask`` per entry,
so admins can then pause or retune them in Django admin without code changes.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps as django_apps


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    seconds: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None


def declared_schedules() -> list[Schedule]:
    found: list[Schedule] = []
    for config in django_apps.get_app_configs():
        if not config.name.startswith("apps."):
            continue
        try:
            module = importlib.import_module(f"{config.name}.tasks")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.tasks":
                raise
            continue
        found.extend(getattr(module, "PERIODIC_TASKS", []))
    return found


def install_schedules() -> list[str]:
    """Create or update the declared periodic tasks; return their names."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    names = []
    for schedule in declared_schedules():
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=schedule.seconds, period=IntervalSchedule.SECONDS
        )
        task, created = PeriodicTask.objects.get_or_create(
            name=schedule.name,
            defaults={
                "task": schedule.task,
                "interval": interval,
                "kwargs": json.dumps(schedule.kwargs),
                "queue": schedule.queue,
            },
        )
        # A new one is saved as declared, once: each save also bumps beat's change marker, and a
        # transactional test's flush installs them all again (a second save was a quarter of its queries).
        if not created:
            # Keep an admin's enabled/disabled choice; refresh what code owns.
            task.task = schedule.task
            task.interval = interval
            task.kwargs = json.dumps(schedule.kwargs)
            task.queue = schedule.queue
            task.save()
        names.append(schedule.name)
    return names
