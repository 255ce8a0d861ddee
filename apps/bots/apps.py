from __future__ import annotations

from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "apps.bots"
    label = "bots"
    verbose_name = "Bots"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from apps.accounts.quotas import Quota, quota_usage_register
        from apps.bots import (
            metrics,  # noqa: F401 - the tick metrics exist on /metrics from the start
            risk_actions,  # noqa: F401 - carries out risk limits' pause/stop actions
        )
        from apps.bots.receivers import (
            fill_logged,
            order_finished_logged,
            order_logged,
            stop_bots_for_kill_switch,
        )
        from apps.bots.selectors import bot_is_owned, bot_replays_active_count, bots_count, bots_running_count
        from apps.exchanges.ownership import paper_bot_check_register
        from apps.orders.signals import order_finished
        from apps.risk.signals import kill_switch_engaged

        # The paper exchange keeps bot ids as plain numbers; only this app knows whose they are.
        paper_bot_check_register(bot_is_owned)
        # What the per-user quotas (accounts, below bots) count of this app.
        quota_usage_register(Quota.RESEARCH_JOBS, "bot_replays", bot_replays_active_count)
        quota_usage_register(Quota.RUNNING_BOTS, "bots", bots_running_count)
        quota_usage_register(Quota.BOTS, "bots", bots_count)
        # The kill switch (risk, below bots) stops every bot through this receiver.
        kill_switch_engaged.connect(stop_bots_for_kill_switch, dispatch_uid="bots.kill_switch")
        # The bot's log hears of its orders, their fills and unfilled ends (orders, below bots).
        post_save.connect(order_logged, sender="orders.Order", dispatch_uid="bots.log.order")
        post_save.connect(fill_logged, sender="orders.Fill", dispatch_uid="bots.log.fill")
        order_finished.connect(order_finished_logged, dispatch_uid="bots.log.order_finished")
