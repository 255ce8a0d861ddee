"""What a running event strategy (grid, DCA, …) keeps between live ticks.

A live tick runs in whichever worker claims it, so the strategy object cannot
live in memory from one tick to the next. After each tick its own attributes
(everything ``initialize`` and the callbacks set, not the parameters, broker or
candle) are saved as plain JSON on the bot, in the same update that marks the
candle ticked; the next tick, on any worker, builds the strategy from its
parameters and restores them. JSON rather than pickle: the state is readable in
the admin, survives a deploy that changes a class, and loading it cannot run
code. Rebuilding the state by replaying the bot's history was the alternative;
it costs a tick proportional to the bot's age and breaks when candles are
re-imported, so it was not taken. The codec is ``apps.backtests.strategies.state``
(pure): a user strategy's attributes are encoded by the same code inside its
sandbox, and stored here as they come, never decoded outside the sandbox.

Besides the attributes the state holds the bot's orders the strategy placed
that have not finished yet (order pk and the id the strategy got). A tick
reports the ones that have filled since to ``on_fill``, in the order they
filled, and drops them from the list; because the list is saved with the tick,
a fill is reported exactly once, and a redelivered tick (whose state was never
saved) reports the same fills to the same earlier state again. The tick adds
the candle it ran (``[index, open ms]``), so ``candle.index`` keeps counting the
bot's candles although the window it reads slides.

The ids the strategy sees are derived from the client order id
``bot<id>-<candle ms>-<k>`` as ``candle ms * IDS_PER_CANDLE + k``: stable across
ticks and workers without a table of them.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Min

from apps.backtests.engine.orders import OrderInfo
from apps.backtests.strategies.state import StateError, attrs_dump, attrs_load
from apps.core.errors import DomainError

# Room for the orders one candle may place.
IDS_PER_CANDLE = 1000
STATE_VERSION = 1
_BOT_CID = re.compile(r"^bot\d+-(\d+)-(\d+)$")


class StrategyStateError(DomainError):
    """The strategy keeps something that cannot be saved between ticks (a bug in the strategy)."""

    code = "strategy_state"
    status = 500


def local_order_id(client_order_id: str | None) -> int | None:
    """The id the strategy got for the order with this bot client order id (``None``: not the strategy's)."""
    match = _BOT_CID.match(client_order_id or "")
    if match is None:
        return None
    return int(match[1]) * IDS_PER_CANDLE + int(match[2])


# ----------------------------------------------------------------- the state
def state_dump(
    strategy: Any, *, unreported: dict[int, int], attrs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON state of ``strategy`` after a tick, with the orders whose fills are still to report.

    A user strategy runs in the sandbox, which encodes its attributes there: it passes
    ``attrs`` (and ``strategy=None``); they are stored as given, never decoded here.
    """
    if attrs is None:
        try:
            attrs = attrs_dump(strategy)
        except StateError as exc:
            raise StrategyStateError(str(exc)) from exc
    return {
        "version": STATE_VERSION,
        "attrs": attrs,
        "unreported": [[pk, local] for pk, local in sorted(unreported.items())],
    }


def state_load(strategy: Any, state: dict[str, Any]) -> dict[int, int]:
    """Restore ``strategy``'s attributes from ``state``; returns the unreported orders (pk -> local id)."""
    attrs_load(strategy, state.get("attrs", {}))
    return {int(pk): int(local) for pk, local in state.get("unreported", [])}


# ------------------------------------------------------------------ the fills
def fills_to_report(unreported: dict[int, int]) -> list[OrderInfo]:
    """The strategy's orders that finished since the last tick, filled ones as ``on_fill`` infos.

    Finished orders leave ``unreported`` (cancelled and rejected ones silently, as in the
    backtest); filled ones come back in the order they filled (their first fill), as the
    backtest calls ``on_fill``.
    """
    from apps.orders.models import Fill, Order

    if not unreported:
        return []
    orders = Order.objects.filter(pk__in=list(unreported))
    for gone in set(unreported) - set(orders.values_list("pk", flat=True)):
        unreported.pop(gone)  # deleted with its account: nothing will ever fill
    done = list(orders.exclude(status__in=Order.OPEN_STATUSES))
    first_fill = dict(
        Fill.objects.filter(order__in=done)
        .values("order_id")
        .annotate(first=Min("id"))
        .values_list("order_id", "first")
    )
    infos = []
    for order in sorted(done, key=lambda o: (first_fill.get(o.pk, 0), o.pk)):
        local = unreported.pop(order.pk)
        if order.status == Order.Status.FILLED:
            infos.append(fill_info(order, local))
    return infos


def fill_info(order: Any, local: int) -> OrderInfo:
    """What ``on_fill`` gets for a filled order of the orders app (``local``: the strategy's id)."""
    return OrderInfo(
        id=local,
        type=order.type,
        side=order.side,
        amount=float(order.amount),
        price=None if order.price is None else float(order.price),
        stop_price=None if order.stop_price is None else float(order.stop_price),
        trail=None,
        reduce_only=order.reduce_only,
        status="filled",
        filled_size=float(order.filled),
        filled_price=None if order.average_price is None else float(order.average_price),
        fill_time=None,
        reason="",
    )
