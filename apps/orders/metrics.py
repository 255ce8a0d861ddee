"""Orders by status for ``/metrics``, counted in the database when scraped."""

from __future__ import annotations

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from apps.core.observability.metrics import PREFIX, SCRAPE_REGISTRY


class OrdersByStatusCollector:
    """One GROUP BY over the orders table per scrape (every 15-60 s); every status is
    reported, 0 included, so a graph of a status that empties drops to 0 instead of ending."""

    def collect(self):
        from apps.orders.models import Order

        family = GaugeMetricFamily(
            f"{PREFIX}_orders", "Orders in the database, by status (counted when scraped).", labels=["status"]
        )
        counts = dict(Order.objects.order_by().values_list("status").annotate(n=Count("id")))
        for status in Order.Status.values:
            family.add_metric([status], counts.get(status, 0))
        yield family


def register() -> None:
    SCRAPE_REGISTRY.register(OrdersByStatusCollector())
