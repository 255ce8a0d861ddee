from __future__ import annotations

from django.apps import AppConfig


class ExchangesConfig(AppConfig):
    name = "apps.exchanges"
    label = "exchanges"
    verbose_name = "Exchanges"

    def ready(self) -> None:
        from apps.exchanges import checks, crypto  # noqa: F401 - registers the system check

        # Fail at start-up, not on the first save: credentials are never stored
        # unencrypted, so without a usable key the app must not run at all.
        crypto.check_keys()
