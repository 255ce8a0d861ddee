from __future__ import annotations

import zoneinfo

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(**{f"{self.model.USERNAME_FIELD}__iexact": username})


class DisplayCurrency(models.TextChoices):
    USD = "USD", "US dollar"
    USDT = "USDT", "Tether (USDT)"
    EUR = "EUR", "Euro"
    GBP = "GBP", "Pound sterling"
    BTC = "BTC", "Bitcoin"
    ETH = "ETH", "Ether"


TIMEZONE_CHOICES = [(name, name) for name in sorted(zoneinfo.available_timezones())]


class User(AbstractBaseUser, PermissionsMixin):
    """A trader or an admin. Email is the login."""

    email = models.EmailField("email address", unique=True)
    display_name = models.CharField(max_length=80, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin site.")
    date_joined = models.DateTimeField(default=timezone.now)

    # Preferences
    timezone = models.CharField(max_length=64, default="UTC", choices=TIMEZONE_CHOICES)
    display_currency = models.CharField(
        max_length=8, choices=DisplayCurrency.choices, default=DisplayCurrency.USD
    )
    default_exchange = models.CharField(max_length=32, default="binance", help_text="ccxt exchange id")

    # Quotas set by admins (apps.accounts.quotas); empty: the platform's default (QUOTA_* settings).
    max_research_jobs = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Backtests, optimizations and bot replays pending or running at once. "
        "Empty: the default (QUOTA_MAX_RESEARCH_JOBS).",
    )
    max_running_bots = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Bots starting, running or paused at once. Empty: the default (QUOTA_MAX_RUNNING_BOTS).",
    )
    max_bots = models.PositiveIntegerField(
        null=True, blank=True, help_text="Bots in all. Empty: the default (QUOTA_MAX_BOTS)."
    )

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.display_name or self.email

    def get_short_name(self) -> str:
        return self.display_name or self.email.split("@")[0]
