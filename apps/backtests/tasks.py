from __future__ import annotations

from apps.core.schedules import Schedule

PERIODIC_TASKS: list[Schedule] = []
