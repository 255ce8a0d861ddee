from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.core.schedules import install_schedules


class Command(BaseCommand):
    help = "Install the periodic tasks declared in code into django-celery-beat."

    def handle(self, *args, **options):
        for name in install_schedules():
            self.stdout.write(f"installed: {name}")
