from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import BaseCommand

# Core sits below accounts (docs/architecture.md): the user model comes from settings.
User = get_user_model()

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-trader-2026"  # noqa: S105 - a published demo login, printed on purpose

# The seed command of each app that has demo content, in order (the bot needs the candles); each must exist.
# The admin account comes last, so that its login is printed next to the demo user's.
APP_SEED_COMMANDS = ["seed_demo_marketdata", "seed_demo_bots", "seed_demo_admin"]


class Command(BaseCommand):
    help = (
        "Create the demo user, the apps' demo data and an admin account (idempotent). "
        "Prints the demo and admin logins."
    )

    def handle(self, *args, **options):
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(
                email=DEMO_EMAIL, password=DEMO_PASSWORD, display_name="Demo Trader"
            )
            self.stdout.write(f"Created demo user {DEMO_EMAIL}")
        available = get_commands()
        for name in APP_SEED_COMMANDS:
            command = load_command_class(available[name], name)
            accepts_user = any(action.dest == "user" for action in command.create_parser("", name)._actions)
            extra = {"user": user.email} if accepts_user else {}
            call_command(command, stdout=self.stdout, stderr=self.stderr, **extra)
        self.stdout.write(
            self.style.SUCCESS(
                "\n  Demo login:  email    "
                + DEMO_EMAIL
                + "\n               password "
                + DEMO_PASSWORD
                + "\n"
            )
        )
