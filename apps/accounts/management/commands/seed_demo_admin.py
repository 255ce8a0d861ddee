"""The demo's admin account (``seed_demo`` runs it): a superuser to sign in to ``/admin/`` with."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.accounts.models import User

ADMIN_EMAIL = "admin@example.com"


class Command(BaseCommand):
    help = (
        "Create the demo's admin account (idempotent). Its password is DEMO_ADMIN_PASSWORD when set "
        "(and kept equal to it), otherwise generated and printed once, when the account is created."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", default=ADMIN_EMAIL, help=f"the admin's login (default {ADMIN_EMAIL})")

    def handle(self, *args, email: str, **options):
        email = User.objects.normalize_email(email).lower()
        configured = settings.DEMO_ADMIN_PASSWORD
        admin = User.objects.filter(email__iexact=email).first()
        if admin is None:
            password = configured or secrets.token_urlsafe(12)
            User.objects.create_superuser(email=email, password=password, display_name="Admin")
            shown = "the value of DEMO_ADMIN_PASSWORD" if configured else f"{password}   (shown this once)"
            self._login(email, shown)
            return
        if not admin.is_superuser:
            # Someone registered this address as a trader: an admin is never made from a public sign-up.
            self.stderr.write(
                self.style.WARNING(
                    f"{email} exists and is not an admin; left as it is. Create an admin with "
                    "`manage.py createsuperuser` or `seed_demo_admin --email <another address>`."
                )
            )
            return
        if configured and not admin.check_password(configured):
            admin.set_password(configured)
            admin.save(update_fields=["password"])
            self._login(email, "the value of DEMO_ADMIN_PASSWORD (updated)")
            return
        self._login(
            email,
            "the value of DEMO_ADMIN_PASSWORD"
            if configured
            else f"printed when it was created (a new one: manage.py changepassword {email})",
        )

    def _login(self, email: str, password: str) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  Admin login (/admin/):  email    {email}\n                          password {password}\n"
            )
        )
