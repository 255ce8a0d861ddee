from __future__ import annotations

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "apps.orders"
    label = "orders"
    verbose_name = "Orders"

    def ready(self) -> None:
        from apps.orders import metrics

        metrics.register()  # orders by status on /metrics
