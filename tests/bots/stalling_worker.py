"""A Celery app for the crash test: the project's app, whose bot ticks stall mid-way.

``celery -A tests.bots.stalling_worker worker`` runs the real tasks, except that a
tick sleeps at ``STALL_AT`` (environment), so the test can SIGKILL the worker
while the tick is between writing its order and recording the tick:

* ``before_send``: the order is written (pending, with its client order id) and
  the worker stalls before sending it to the exchange (a paper order is written and
  sent in one transaction: the stall is inside it, nothing committed yet); the file
  at ``STALL_MARKER`` (environment) is created when the stall begins;
* ``after_send``: the exchange has the order (the paper exchange filled it) and
  the worker stalls before the tick is recorded.
"""

from __future__ import annotations

import os
import time

from celery.signals import worker_ready

from config.celery import app

STALL_SECONDS = 120

__all__ = ["app"]


@worker_ready.connect(weak=False)
def _stall(**_kwargs) -> None:
    if os.environ.get("STALL_AT") == "before_send":
        from apps.orders import services

        send = services._submit

        def stalled_send(*args, **kwargs):
            open(os.environ["STALL_MARKER"], "w").close()
            time.sleep(STALL_SECONDS)
            return send(*args, **kwargs)

        services._submit = stalled_send
    else:
        from apps.bots.services import orders

        place = orders.bot_place_order

        def placed_then_stalled(**kwargs):
            order = place(**kwargs)
            time.sleep(STALL_SECONDS)
            return order

        orders.bot_place_order = placed_then_stalled
