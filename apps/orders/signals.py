"""What the orders app tells the apps above it (bots) without importing them.

A fill needs no signal of its own: a new ``Fill`` row is its ``post_save`` with
``created`` (risk and bots connect with ``sender="orders.Fill"``), once per fill
since a trade id is unique per account and a re-sync skips the trades it knows.
"""

from __future__ import annotations

from django.dispatch import Signal

#: An order ended unfilled or part-filled: cancelled, rejected or expired. Sent once per
#: order with ``order`` (status and reason set, maybe not saved yet), inside the transaction
#: that records it, so a rollback takes the receivers' writes with it.
order_finished = Signal()
