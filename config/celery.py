"""Celery application.

With ``REDIS_URL`` set, Redis is the broker and workers/beat run as their own
processes (``celery -A config worker`` / ``celery -A config beat``). Without it
the broker is in-process memory and ``manage.py serve`` runs a thread-pool
worker and beat inside the web process (see ``apps.core.embedded``).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("trading")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
