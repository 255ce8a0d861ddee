from __future__ import annotations

from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "apps.bots"
    label = "bots"
    verbose_name = "Bots"

    def ready(self) -> None:
        from apps.bots import risk_actions  # noqa: F401 - carries out risk limits' pause/stop actions
        from apps.bots.selectors import bot_is_owned
        from apps.exchanges.ownership import paper_bot_check_register

        # The paper exchange keeps bot ids as plain numbers; only this app knows whose they are.
        paper_bot_check_register(bot_is_owned)
