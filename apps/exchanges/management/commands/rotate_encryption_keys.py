"""Re-encrypt every stored exchange credential with the first of ``FIELD_ENCRYPTION_KEYS``.

Rotation: put the new key first in FIELD_ENCRYPTION_KEYS (keep the old ones
after it), run this command, then remove the old keys.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.exchanges.services import encryption_keys_rotate


class Command(BaseCommand):
    help = "Re-encrypt all exchange API keys/secrets/passphrases with the newest FIELD_ENCRYPTION_KEYS entry."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        from apps.exchanges.crypto import UndecryptableValue

        try:
            count = encryption_keys_rotate(batch_size=batch_size)
        except UndecryptableValue as exc:
            raise CommandError(f"{exc} Nothing was changed.") from None
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {count} exchange connection(s) with the newest key.")
        )
