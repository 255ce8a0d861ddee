"""Account workflows: registration, profile and preferences, login lock-out."""

from __future__ import annotations

import hashlib
import zoneinfo

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts.models import DisplayCurrency, User
from apps.core.errors import ValidationFailed


def _validate_preferences(
    *, timezone: str | None, display_currency: str | None, default_exchange: str | None
) -> dict:
    errors: dict[str, list[str]] = {}
    if timezone is not None and timezone not in zoneinfo.available_timezones():
        errors["timezone"] = [f"Unknown timezone {timezone!r}; use an IANA name such as 'Europe/Berlin'."]
    if display_currency is not None and display_currency not in DisplayCurrency.values:
        errors["display_currency"] = [f"Choose one of {', '.join(DisplayCurrency.values)}."]
    if default_exchange is not None:
        from apps.exchanges.catalog import SUPPORTED_EXCHANGES

        if default_exchange not in SUPPORTED_EXCHANGES:
            errors["default_exchange"] = [
                f"Unknown exchange {default_exchange!r}; use one of {', '.join(SUPPORTED_EXCHANGES)}."
            ]
    return errors


@transaction.atomic
def user_register(*, email: str, password: str, display_name: str = "") -> User:
    """Create a trader account; raises ``ValidationFailed`` with per-field messages."""
    email = User.objects.normalize_email(email or "").strip().lower()
    errors: dict[str, list[str]] = {}
    if User.objects.filter(email__iexact=email).exists():
        errors["email"] = ["An account with this email already exists."]
    try:
        password_validation.validate_password(password, User(email=email, display_name=display_name))
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise ValidationFailed(next(iter(errors.values()))[0], fields=errors)
    return User.objects.create_user(email=email, password=password, display_name=display_name)


@transaction.atomic
def user_update(
    *,
    user: User,
    display_name: str | None = None,
    timezone: str | None = None,
    display_currency: str | None = None,
    default_exchange: str | None = None,
) -> User:
    """Update the profile and preferences; only the given fields change."""
    errors = _validate_preferences(
        timezone=timezone, display_currency=display_currency, default_exchange=default_exchange
    )
    if errors:
        raise ValidationFailed(next(iter(errors.values()))[0], fields=errors)
    changed = []
    for field, value in (
        ("display_name", display_name),
        ("timezone", timezone),
        ("display_currency", display_currency),
        ("default_exchange", default_exchange),
    ):
        if value is not None:
            setattr(user, field, value)
            changed.append(field)
    if changed:
        user.save(update_fields=changed)
    return user


# --- login lock-out -----------------------------------------------------------
# Counted per email in the cache, so that it holds across web processes when
# the cache is Redis. The email is hashed: cache keys should not hold addresses.


def _failure_key(email: str) -> str:
    digest = hashlib.sha256((email or "").strip().lower().encode()).hexdigest()[:32]
    return f"login-failures:{digest}"


def login_locked(*, email: str) -> bool:
    return cache.get(_failure_key(email), 0) >= settings.LOGIN_FAILURE_LIMIT


def login_failed(*, email: str) -> None:
    key = _failure_key(email)
    if cache.add(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)


def login_succeeded(*, email: str) -> None:
    cache.delete(_failure_key(email))


LOCKED_MESSAGE = "Too many failed login attempts for this account. Try again in {minutes} minutes."


def locked_message() -> str:
    return LOCKED_MESSAGE.format(minutes=max(1, settings.LOGIN_LOCKOUT_SECONDS // 60))


def refresh_token_revoke(*, token: str) -> None:
    """Blacklist a refresh token (logout); an invalid or expired one is a ``ValidationFailed``."""
    # Imported here: simplejwt's tokens module loads the blacklist models, which needs the app registry.
    from rest_framework_simplejwt.exceptions import TokenError
    from rest_framework_simplejwt.tokens import RefreshToken

    try:
        RefreshToken(token).blacklist()
    except TokenError as exc:
        raise ValidationFailed("Invalid or expired refresh token.", fields={"refresh": [str(exc)]}) from exc
