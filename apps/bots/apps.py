from __future__ import annotations

from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "apps.bots"
    label = "bots"
    verbose_name = "Bots"

    def ready(self) -> None:
        from apps.bots import (
            metrics,  # noqa: F401 - the tick metrics exist on /metrics from the start
            risk_actions,  # noqa: F401 - carries out risk limits' pause/stop actions
        )
        from apps.bots.receivers import stop_bots_for_kill_switch
        from apps.bots.selectors import bot_is_owned
        from apps.exchanges.ownership import paper_bot_check_register
        from apps.risk.signals import kill_switch_engaged

        # The paper exchange keeps bot ids as plain numbers; only this app knows whose they are.
        paper_bot_check_register(bot_is_owned)
        # The kill switch (risk, below bots) stops every bot through this receiver.
        kill_switch_engaged.connect(stop_bots_for_kill_switch, dispatch_uid="bots.kill_switch")
