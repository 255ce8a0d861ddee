"""The paper exchange's matching: orders (and a futures liquidation) against candles and price ticks.

A mixin of ``PaperGateway`` (``apps/exchanges/gateway/paper.py``). Every fill
decision is the engine's (``apps.backtests.engine.fills``); this part walks the
candles closed since the last pass, then the current price, in the order the
candle's path reaches each order, and hands the fills to the gateway's
bookkeeping (``_apply_fill``; futures funding and liquidation through
``PaperFutures``). Matching is idempotent: orders and positions remember the
last candle they were checked against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.backtests.engine import fills
from apps.core.compiled import compiled
from apps.exchanges.gateway.base import to_decimal
from apps.exchanges.gateway.paper_common import SIDE_SIGN, dec, q, split_symbol
from apps.exchanges.gateway.prices import Bar, PriceSource
from apps.exchanges.models import PaperAccount, PaperBalance, PaperOrder, PaperPosition
from apps.orders.enums import OPEN_STATUSES, OrderStatus, OrderType

TAKER_RESTING = (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT, OrderType.TRAILING_STOP)
MAX_EVENTS_PER_BAR = 1_000


def path_point(path: tuple[float, ...], price: float) -> tuple[int, float]:
    """Where on the candle path ``price`` is first reached: (segment, distance from its start).

    Segment 0 is the open; segment k runs from ``path[k-1]`` to ``path[k]``.
    Comparing these tuples orders events the way the engine's walk meets them.
    """
    if price == path[0]:
        return 0, 0.0
    for k in range(1, len(path)):
        lo, hi = min(path[k - 1], path[k]), max(path[k - 1], path[k])
        if lo <= price <= hi:
            return k, abs(price - path[k - 1])
    return len(path), 0.0


def liquidation_point(path: tuple[float, ...], liq: float, long: bool) -> tuple[int, float] | None:
    """Where the path first reaches a position's liquidation price, or None."""
    direction = fills.LOW if long else fills.HIGH
    if fills.crossed(direction, liq, path[0]):
        return 0, -1.0  # at the open the engine liquidates before any gapped order
    for k in range(1, len(path)):
        if fills.crossed(direction, liq, path[k]):
            return k, abs(liq - path[k - 1])
    return None


@dataclass
class Candidate:
    """A fill an order would get in the current candle (slippage not applied yet)."""

    level: float
    qty: Decimal
    maker: bool
    slip: bool


@compiled  # asked by every order (apps/core/compiled.py)
def _open_symbols(account_id: int):
    return PaperOrder.objects.filter(account_id=account_id).open().order_by().values_list("symbol", flat=True)


class PaperMatching:
    """Matching passes of a ``PaperGateway``: ``match`` (every read), ``on_price`` (a new price)."""

    account: PaperAccount
    prices: PriceSource
    _spot_side: dict[str, int]

    def process(self, symbol: str | None = None) -> int:
        """Matching pass (``match``); kept under its old name for the beat job and callers."""
        return self.match(symbol)

    def match(self, symbol: str | None = None) -> int:
        """Fill against the candles closed since the last pass, then against the current price; returns fills."""
        if not self._active_symbols(symbol):
            # Nothing open (no order, no futures position): no lock, no pass. Matching is
            # idempotent, so an order placed meanwhile is matched by the next pass.
            return 0
        with transaction.atomic():
            self._lock()
            self._forget()
            active = self._active_symbols(symbol)
            count = sum(self._process_symbol(sym) for sym in active)
            for sym in active:  # what the candles filled is no longer pending: _tick reads anew
                count += self._tick(sym, self.prices.price(sym), self.prices.now_ms(sym))
            return count

    def on_price(self, symbol: str, price: Decimal, timestamp: int | None = None) -> int:
        """A new price for ``symbol`` (a ticker or trade): fill what it crosses; returns fills.

        Closed candles are matched first, so events stay in time order; calling it
        twice with the same price changes nothing the second time.
        """
        with transaction.atomic():
            self._lock()
            self._forget()
            count = self._process(symbol=symbol)
            ts = self.prices.now_ms(symbol) if timestamp is None else int(timestamp)
            return count + self._tick(symbol, to_decimal(price), ts)

    def _active_symbols(self, symbol: str | None) -> list[str]:
        # A set: unsorted (the orders' default ordering would make PostgreSQL sort them first).
        symbols = set(_open_symbols(self.account.pk))
        if self.futures:
            symbols |= set(self.account.positions.exclude(size=0).order_by().values_list("symbol", flat=True))
        if symbol:
            symbols &= {symbol}
        return sorted(symbols)

    def _process(self, *, symbol: str | None) -> int:
        count = 0
        for sym in self._active_symbols(symbol):
            count += self._process_symbol(sym)
        return count

    def _pending(self, symbol: str) -> list[PaperOrder]:
        orders = self.account.orders.open().filter(symbol=symbol).order_by("created_at", "id")
        return [self._loaded(o) for o in orders]

    def _process_symbol(self, symbol: str) -> int:
        pending = self._pending(symbol)
        position = self._futures_position(symbol)
        starts = [max(o.rests_from, o.checked_until) for o in pending]
        if position is not None and position.size:
            starts.append(position.checked_until)
        if not starts:
            return 0
        bars = self.prices.candles_since(symbol, min(starts))
        if not bars:
            return 0
        spec = None
        if position is not None:
            spec = self._funding_spec(
                symbol, min(position.funded_until, bars[0].timestamp), bars[-1].timestamp
            )
        count = 0
        for bar in bars:
            count += self._run_point(symbol, bar, pending, position, tick=False, funding=spec)
            for order in pending:
                if order.status in OPEN_STATUSES and bar.timestamp >= max(
                    order.rests_from, order.checked_until
                ):
                    order.checked_until = bar.timestamp + 1
            if position is not None and bar.timestamp >= position.checked_until:
                position.checked_until = bar.timestamp + 1
        self._save_progress(pending)
        if position is not None:
            position.save(update_fields=["checked_until", "funded_until", "updated_at"])
        return count

    def _save_progress(self, pending: list[PaperOrder]) -> None:
        # One write for the orders that only moved on, not one per order and candle.
        groups: dict[tuple[int, bool], list[int]] = {}
        for order in pending:
            if order.status not in OPEN_STATUSES:
                continue
            if order.type == OrderType.TRAILING_STOP:
                order.save(update_fields=["checked_until", "extreme", "updated_at"])
                continue
            groups.setdefault((order.checked_until, order.triggered), []).append(order.pk)
        for (checked_until, triggered), ids in groups.items():
            PaperOrder.objects.filter(pk__in=ids).update(
                checked_until=checked_until, triggered=triggered, updated_at=timezone.now()
            )

    def _tick(self, symbol: str, price: Decimal | None, timestamp: int) -> int:
        """Match one price point: crossed orders fill as on a gap at a candle's open (fills rule 4)."""
        if price is None or price <= 0:
            return 0
        # A partly filled order's rest waits for the next candles (fills rule 7): a tick has no volume.
        pending = [
            o
            for o in self._pending(symbol)
            if max(o.rests_from, o.checked_until) <= timestamp and not o.filled
        ]
        position = self._futures_position(symbol)
        if not pending and (position is None or not position.size):
            return 0
        p = float(price)
        volume = self._last_volume(symbol)
        bar = Bar(timestamp, p, p, p, p, math.inf if volume is None else volume)
        count = self._run_point(symbol, bar, pending, position, tick=True, funding=None)
        for order in pending:
            if order.status == OrderStatus.PARTIALLY_FILLED:  # the rest trades from the next candle
                order.checked_until = max(order.checked_until, timestamp + 1)
        self._save_progress(pending)
        return count

    def _path_side(self, symbol: str, pending: list[PaperOrder], position: PaperPosition | None) -> int:
        if position is not None:
            return position.side
        # Spot holdings change only with a fill: read them once per pass and after fills.
        cached = self._spot_side.get(symbol)
        if cached is not None:
            return cached
        base = pending[0].base if pending else split_symbol(symbol)[0]
        # Spot: holding the base asset is a long, which sets the engine's intra-candle path.
        balance = PaperBalance.objects.filter(account=self.account, asset=base).first()
        self._spot_side[symbol] = 1 if balance is not None and balance.total > 0 else 0
        return self._spot_side[symbol]

    def _run_point(
        self,
        symbol: str,
        bar: Bar,
        pending: list[PaperOrder],
        position: PaperPosition | None,
        *,
        tick: bool,
        funding: Any,
    ) -> int:
        """One candle (or one price point): funding, then orders and liquidation in path order."""
        position_due = position is not None and (tick or bar.timestamp >= position.checked_until)
        if position_due and position.size:
            if tick:  # funding due by now is settled at the first price seen after it
                funding = self._funding_spec(symbol, position.funded_until, bar.timestamp)
            self._charge_funding(position, bar, funding)
        active = [
            o
            for o in pending
            if o.status in OPEN_STATUSES and bar.timestamp >= max(o.rests_from, o.checked_until)
        ]
        if not active and not (position_due and position.size):
            return 0
        path_side = self._path_side(symbol, pending, position)
        path = fills.candle_path(bar.open, bar.high, bar.low, bar.close, path_side)
        floor: tuple[int, float, int] = (0, -math.inf, 0)
        acted: set[int] = set()
        extremes: dict[int, float] = {}  # trailing stops: the best price this candle reached
        count = 0
        for _ in range(MAX_EVENTS_PER_BAR):
            best: tuple[tuple[int, float, int], PaperOrder | None, Candidate | None] | None = None
            if position_due and position.size:
                liq = self._liquidation_price(position)
                where = None if liq is None else liquidation_point(path, liq, position.size > 0)
                if where is not None and (*where, 0) >= floor:
                    best = ((*where, 0), None, None)
            for order in active:
                if order.pk in acted or order.status not in OPEN_STATUSES:
                    continue
                candidate = self._candidate(order, bar, path_side, extremes)
                if candidate is None:
                    continue
                key = (*path_point(path, candidate.level), 1)
                if key >= floor and (best is None or key < best[0]):
                    best = (key, order, candidate)
            if best is None:
                break
            floor, order, candidate = best
            count += 1
            if order is None:
                self._liquidate(position, bar.timestamp, path[0] if floor[0] == 0 else None)
                continue
            acted.add(order.pk)
            price = candidate.level
            if candidate.slip:
                price = self._slippage().apply(price, SIDE_SIGN[order.side], float(candidate.qty), bar.volume)
            if not self._apply_fill(
                order, candidate.qty, dec(price), maker=candidate.maker, timestamp=bar.timestamp
            ):
                count -= 1
        for order in active:
            if order.pk in extremes and order.status in OPEN_STATUSES:
                order.extreme = dec(extremes[order.pk])
        return count

    def _candidate(
        self, order: PaperOrder, bar: Bar, position_side: int, extremes: dict[int, float]
    ) -> Candidate | None:
        """The fill ``order`` gets in this candle by the engine's rules, or None.

        Side effects: a stop-limit whose stop the candle reaches is marked triggered,
        and an unfilled trailing stop's new best price goes into ``extremes``.
        """
        side = SIDE_SIGN[order.side]
        kind = order.type
        qty_cap = fills.partial_fill_size(float(order.remaining), bar.volume, self._mvf())
        qty = min(order.remaining, q(dec(qty_cap)))
        if qty <= 0:
            return None
        if kind == OrderType.MARKET:  # the remainder of a partially filled market order: next open
            return Candidate(bar.open, qty, maker=False, slip=True)
        if kind == OrderType.STOP_LIMIT and order.triggered:
            kind = OrderType.LIMIT  # a triggered stop-limit is a plain resting limit
        level_price = None if order.price is None else float(order.price)
        stop = None if order.stop_price is None else float(order.stop_price)
        trail = None if order.trailing_percent is None else float(order.trailing_percent) / 100.0
        extreme = None if order.extreme is None else float(order.extreme)
        fill, new_extreme = fills.evaluate_order(
            kind,
            side,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            price=level_price,
            stop_price=stop,
            trail=trail,
            extreme=extreme,
            position_side=position_side,
        )
        if kind == OrderType.TRAILING_STOP and fill is None:
            extremes[order.pk] = new_extreme
        if kind == OrderType.STOP_LIMIT:
            path = fills.candle_path(bar.open, bar.high, bar.low, bar.close, position_side)
            direction = fills.trigger_direction(OrderType.STOP_LIMIT, side)
            hit = next((k for k, point in enumerate(path) if fills.crossed(direction, stop, point)), None)
            if hit is None:
                return None
            order.triggered = True
            trigger = path[0] if hit == 0 else stop
            marketable = (side > 0 and trigger <= level_price) or (side < 0 and trigger >= level_price)
            if fill is None:
                return None
            return Candidate(fill, qty, maker=not marketable, slip=False)
        if fill is None:
            return None
        if kind in TAKER_RESTING:
            return Candidate(fill, qty, maker=False, slip=True)
        return Candidate(fill, qty, maker=True, slip=False)
