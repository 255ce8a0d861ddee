"""A fill changes an account's value: snapshot its owner soon after (debounced).

Connected in ``PortfolioConfig.ready`` to ``orders.Fill`` by its string
reference, so the portfolio app needs nothing from the orders app's code.
"""

from __future__ import annotations

import logging

from django.db import transaction

from apps.core.cache import first_in_window

logger = logging.getLogger(__name__)

#: A burst of fills (a market order in many pieces, a bot's bracket) makes one snapshot.
FILL_DEBOUNCE_SECONDS = 5


def _owner_id(fill) -> int | None:
    account = fill.paper_account if fill.paper_account_id else fill.connection
    if getattr(account, "replay_id", None) is not None:
        return None  # a bot replay's fill is a simulation on past candles, not the user's money
    return getattr(account, "user_id", None)


def snapshot_after_fill(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if not created or raw:
        return
    user_id = _owner_id(instance)
    if user_id is None:
        return

    def enqueue() -> None:
        from apps.portfolio.tasks import portfolio_snapshot_user

        # Only the first fill of a burst schedules the snapshot.
        if first_in_window(f"portfolio:fill-snapshot:{user_id}", FILL_DEBOUNCE_SECONDS):
            try:
                portfolio_snapshot_user.apply_async((user_id,), countdown=FILL_DEBOUNCE_SECONDS)
            except Exception:  # a broker outage must not fail the fill; the beat snapshots anyway
                logger.exception("portfolio: could not enqueue the snapshot after a fill")

    transaction.on_commit(enqueue)
