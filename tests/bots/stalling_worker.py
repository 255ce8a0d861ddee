"""A Celery app for the crash test: the project's app, whose bot ticks stall after placing.

``celery -A tests.bots.stalling_worker worker`` runs the real tasks, except that
``bot_place_order`` sleeps once it has placed an order, so the test can kill the
worker while a tick is between writing its order and recording the tick.
"""

from __future__ import annotations

import time

from celery.signals import worker_ready

from config.celery import app

STALL_SECONDS = 120

__all__ = ["app"]


@worker_ready.connect(weak=False)
def _stall_after_placing(**_kwargs) -> None:
    from apps.bots.services import orders

    place = orders.bot_place_order

    def placed_then_stalled(**kwargs):
        order = place(**kwargs)
        time.sleep(STALL_SECONDS)
        return order

    orders.bot_place_order = placed_then_stalled
