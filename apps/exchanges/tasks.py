"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task

from apps.core.schedules import Schedule

PERIODIC_TASKS: list[Schedule] = [
    Schedule(
        name="exchanges: fill resting paper orders",
        task="apps.exchanges.tasks.process_paper_orders",
        seconds=30,
    ),
]


@shared_task(name="apps.exchanges.tasks.process_paper_orders", ignore_result=True)
def process_paper_orders() -> int:
    """Fill resting paper orders of every account against the candles closed since the last pass."""
    from apps.exchanges.services import paper_orders_process

    return paper_orders_process()


@shared_task(name="apps.exchanges.tasks.test_connection")
def test_connection(connection_id: int) -> dict:
    """Live-check one connection (used when the dashboard re-checks in the background)."""
    from apps.exchanges.models import ExchangeConnection
    from apps.exchanges.services import connection_test

    connection = ExchangeConnection.objects.alive().filter(pk=connection_id).first()
    if connection is None:
        return {"ok": False, "message": "connection not found"}
    check = connection_test(connection=connection)
    return {"ok": check.ok, "message": check.message, "status": connection.status}
