"""System check: the configured keys can decrypt what is stored (a wrong key fails at start-up).

Registered with the ``database`` tag, so it runs on ``migrate``/``check --database default``
(and the deploy pipeline), not on every management command.
"""

from __future__ import annotations

from django.core.checks import Error, Tags, register


@register(Tags.database)
def stored_credentials_decrypt(app_configs=None, databases=None, **kwargs):
    if not databases:
        return []
    from django.db import DatabaseError

    from apps.exchanges import crypto
    from apps.exchanges.models import ExchangeConnection

    try:
        # values_list runs the field's decryption: the newest row is the likeliest to use the newest key.
        ExchangeConnection.objects.order_by("-id").values_list("api_secret", flat=True).first()
    except DatabaseError:
        return []  # not migrated yet
    except crypto.UndecryptableValue:
        return [
            Error(
                "Stored exchange credentials cannot be decrypted with FIELD_ENCRYPTION_KEYS.",
                hint="Add the key they were encrypted with back to FIELD_ENCRYPTION_KEYS (after the new one), "
                "then run manage.py rotate_encryption_keys.",
                id="exchanges.E001",
            )
        ]
    return []
