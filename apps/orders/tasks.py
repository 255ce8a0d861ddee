"""Thin Celery tasks for orders: take ids, call services."""

from __future__ import annotations

from celery import shared_task

from apps.core.schedules import Schedule
from apps.orders import services


@shared_task(name="apps.orders.tasks.orders_sync_open", ignore_result=True, soft_time_limit=30, time_limit=40)
def orders_sync_open() -> int:
    """Reconcile every account that has open orders with its exchange (brackets, lost answers, fills)."""
    return services.order_sync_open_accounts()


@shared_task(name="apps.orders.tasks.positions_mark", ignore_result=True, soft_time_limit=30, time_limit=40)
def positions_mark() -> int:
    """Mark open positions to the current price (their unrealized P&L between fills)."""
    return services.positions_mark()


PERIODIC_TASKS: list[Schedule] = [
    Schedule("orders: sync open orders", "apps.orders.tasks.orders_sync_open", 5),
    Schedule("orders: mark open positions", "apps.orders.tasks.positions_mark", 10),
]
