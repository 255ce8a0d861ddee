"""Field encryption for exchange credentials: MultiFernet over ``FIELD_ENCRYPTION_KEYS``.

The first key encrypts, every key decrypts, so a key rotation is: put the new
key first, run ``manage.py rotate_encryption_keys``, then drop the old key.
Nothing here ever falls back to storing plaintext: a missing or malformed key
is an ``ImproperlyConfigured`` at start-up (``apps.ExchangesConfig.ready``), and
a stored value no key can decrypt raises ``UndecryptableValue`` (which names
the row's field, never its content).
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

MASK_CHAR = "•"


class UndecryptableValue(Exception):
    """A stored ciphertext that none of ``FIELD_ENCRYPTION_KEYS`` can decrypt."""


@lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is empty: exchange credentials cannot be encrypted."
        )
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.strip().encode()))
        except (ValueError, TypeError) as exc:
            # Never echo the key itself: it is a secret too.
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry #{position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from exc
    return MultiFernet(fernets)


def multifernet() -> MultiFernet:
    """The MultiFernet for the current settings (rebuilt when the key list changes)."""
    return _multifernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def check_keys() -> None:
    """Raise ``ImproperlyConfigured`` unless the configured keys are usable (start-up check)."""
    multifernet()


def encrypt(plaintext: str) -> str:
    return multifernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return multifernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise UndecryptableValue(
            "A stored credential cannot be decrypted with FIELD_ENCRYPTION_KEYS: "
            "the key that encrypted it is missing from the list."
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt ``token`` with the first key (raises ``UndecryptableValue``)."""
    try:
        return multifernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise UndecryptableValue("A stored credential cannot be decrypted for rotation.") from exc


def mask(value: str | None, *, visible: int = 4) -> str:
    """``"••••••••wxyz"``: only the last ``visible`` characters (none for short values)."""
    if not value:
        return ""
    if len(value) <= visible * 2:
        # A short value would be mostly revealed by its last 4 characters.
        return MASK_CHAR * 8
    return MASK_CHAR * 8 + value[-visible:]


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet token; Python code sees the plaintext.

    Ciphertexts are randomized, so the column cannot be filtered on; empty
    strings are stored as empty (nothing secret to hide, and "no passphrase"
    must stay distinguishable without a key).
    """

    description = "Text encrypted with FIELD_ENCRYPTION_KEYS"

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)
