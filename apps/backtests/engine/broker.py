"""``SimulatedBroker``: the backtest implementation of the ``Broker`` protocol (``engine.protocol``).

``SimulatedBroker`` keeps one symbol's account: cash (spot quote balance or
futures wallet balance), a net position (one-way mode), resting orders, and the
records the result is built from (fills, closed trades, state changes). Fill
rules are those of ``engine.fills``; margin and liquidation rules those of
``engine.tiers`` (docs/engine.md); funding that of ``engine.margin``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import BacktestError
from .fees import FeeModel
from .fills import HIGH, LOW, candle_path
from .margin import funding_schedule
from .orders import Order, OrderInfo
from .protocol import Broker
from .sizing import order_size
from .slippage import SlippageModel
from .strategy import Candle, History
from .tiers import MAX_LEVERAGE

if TYPE_CHECKING:
    from .candles import Candles
    from .config import BacktestConfig

# Sizes below this are float dust left by partial closes; treat them as flat.
DUST = 1e-12


# The names a strategy may call: the public methods of the ``Broker`` protocol.
BROKER_METHODS = tuple(
    name for name, value in vars(Broker).items() if not name.startswith("_") and callable(value)
)


class BrokerView:
    """What ``Strategy.broker`` is: the ``Broker`` methods of one broker and nothing else.

    The simulated broker holds the whole candle series (it must, to fill orders
    later); the strategy gets this view instead, whose attributes are the
    protocol's bound methods. No public attribute leads to later candles: the
    broker object is reachable only through a method's ``__self__``, a dunder
    the sandbox refuses, and ``history`` returns copies that end at the current
    candle. Binding the methods directly keeps the per-call cost of a plain
    method call.
    """

    __slots__ = BROKER_METHODS

    def __init__(self, broker: Broker) -> None:
        for name in BROKER_METHODS:
            setattr(self, name, getattr(broker, name))

    def __repr__(self) -> str:
        return "<Broker>"


class SimulatedBroker:
    """Backtest broker over one ``Candles`` series; driven by ``engine.simulator``.

    The simulator calls ``process(i)`` for candle ``i`` only when something can
    happen in it (orders were placed, the candle reaches ``lo_trig``/``hi_trig``,
    funding is due, or a trailing stop must follow the price), which is what makes
    the per-candle loop cheap.
    """

    def __init__(self, data: Candles, config: BacktestConfig, *, on_fill: Any = None) -> None:
        self.data = data
        self.config = config
        self.futures = config.market_type == "futures"
        self.cross = config.margin_mode == "cross"
        self.default_leverage = config.leverage
        self.tiers = config.tiers()
        self.allow_short = config.allow_short
        self.sizing = config.sizing
        self.fees = FeeModel(config.fee)
        self.slippage = SlippageModel(config.slippage)
        self.on_fill = on_fill

        self._ts = data.timestamp.tolist()
        self._o = data.open.tolist()
        self._h = data.high.tolist()
        self._l = data.low.tolist()
        self._c = data.close.tolist()
        self._v = data.volume.tolist()
        # Liquidation, funding and unrealized P&L of futures follow the mark price when
        # mark candles are given (a missing mark candle falls back to the last price).
        mark = data.mark if self.futures else None
        self.mark_missing = 0
        if mark is None:
            self._mo, self._mh, self._ml, self._mc = self._o, self._h, self._l, self._c
            self._scan_l, self._scan_h = self._l, self._h
        else:
            cols = []
            for name in ("open", "high", "low", "close"):
                values = getattr(mark, name)
                missing = np.isnan(values)
                self.mark_missing = max(self.mark_missing, int(missing.sum()))
                cols.append(np.where(missing, getattr(data, name), values))
            self._mo, self._mh, self._ml, self._mc = (c.tolist() for c in cols)
            # The per-candle "can anything happen" test must see both price series.
            self._scan_l = np.minimum(data.low, cols[2]).tolist()
            self._scan_h = np.maximum(data.high, cols[1]).tolist()
        self.has_mark = mark is not None
        self.candle = Candle()

        self._cash = config.initial_cash
        self.size = 0.0  # signed
        self.entry = 0.0
        self.pos_leverage = 1.0
        self.margin = 0.0  # isolated margin (futures)
        self.liq: float | None = None
        self._next_id = 1
        self.incoming: list[Order] = []
        self.resting: list[Order] = []
        self.orders: dict[int, Order] = {}
        self.busy = False
        self.lo_trig = -math.inf
        self.hi_trig = math.inf
        self._n_trailing = 0
        self._i = -1

        self._fund_idx, self._fund_rates = funding_schedule(config.funding_rates, data.timestamp)
        self._fund_ptr = 0
        self.fund_i = self._fund_idx[0] if self._fund_idx else -1
        self.funding_total = 0.0

        # state changes, one entry per candle where cash or position changed
        self.ev_idx: list[int] = []
        self.ev_base: list[float] = []
        self.ev_size: list[float] = []
        # position timeline: (timestamp, signed size, avg entry, leverage)
        self.timeline: list[tuple[int, float, float, float]] = []
        self.fills: list[
            tuple[int, int, int, float, float, float, str]
        ] = []  # ts, order id, side, size, price, fee, reason
        self.trades: list[dict[str, Any]] = []
        self.rejected = 0
        self._trade: dict[str, Any] | None = None
        self._fee_acc = 0.0

    # ------------------------------------------------------------------ helpers
    def _new_id(self) -> int:
        oid = self._next_id
        self._next_id += 1
        return oid

    def _mark(self) -> float:
        """The current mark price (the last price without mark candles)."""
        i = self.candle.index
        return self._mc[i] if i >= 0 else self._mo[0]

    def _unrealized(self, price: float) -> float:
        return self.size * (price - self.entry) if self.size != 0.0 else 0.0

    def _equity_at(self, price: float) -> float:
        if self.futures:
            return self._cash + self.size * (price - self.entry)
        return self._cash + self.size * price

    def _available(self, price: float) -> float:
        """Free balance for new margin and fees."""
        if not self.futures:
            return self._cash
        if self.cross:
            used = abs(self.size) * self.entry / self.pos_leverage
            return self._cash - used + min(0.0, self._unrealized(price))
        return self._cash - self.margin

    def _submit(self, order: Order) -> int:
        self.orders[order.id] = order
        self.incoming.append(order)
        self.busy = True
        return order.id

    def _default_side(self, side: int, amount: float | None, what: str) -> tuple[int, bool]:
        """Resolve side 0 to 'close the position'; such orders are reduce-only."""
        if side != 0:
            if amount is None:
                if self.size == 0.0 or (self.size > 0) == (side > 0):
                    raise BacktestError(
                        f"{what}: amount is required unless the order closes the open position"
                    )
                return side, True
            return side, False
        if self.size == 0.0:
            raise BacktestError(f"{what}: no open position to close; pass side='buy' or 'sell' and an amount")
        return (-1 if self.size > 0 else 1), True

    @staticmethod
    def _check_amount(amount: float | None, what: str) -> None:
        if amount is not None and (
            not isinstance(amount, (int, float)) or not amount > 0 or not math.isfinite(amount)
        ):
            raise BacktestError(f"{what}: amount must be a positive number of base units, got {amount!r}")

    @staticmethod
    def _check_price(price: Any, what: str) -> float:
        if not isinstance(price, (int, float)) or not price > 0 or not math.isfinite(price):
            raise BacktestError(f"{what}: price must be a positive number, got {price!r}")
        return float(price)

    # ------------------------------------------------------------ Broker API
    def market(
        self,
        side: int,
        amount: float | None,
        *,
        leverage: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing_stop: float | None = None,
        reason: str = "signal",
    ) -> int:
        """Market order filling at the next candle's open (``amount`` None: configured sizing)."""
        self._check_amount(amount, "buy" if side > 0 else "sell")
        if leverage is not None:
            if not self.futures and leverage != 1:
                raise BacktestError("leverage needs market_type 'futures'")
            if not isinstance(leverage, (int, float)) or not 1 <= leverage <= MAX_LEVERAGE:
                raise BacktestError(f"leverage must be between 1 and {MAX_LEVERAGE:g}")
        for name, value in (
            ("stop_loss", stop_loss),
            ("take_profit", take_profit),
            ("trailing_stop", trailing_stop),
        ):
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise BacktestError(f"{name} must be a positive fraction of the entry price")
        bracket = None
        if stop_loss or take_profit or trailing_stop:
            bracket = (stop_loss, take_profit, trailing_stop)
        order = Order(
            self._new_id(),
            "market",
            side,
            amount,
            leverage=leverage,
            bracket=bracket,
            reason=reason,
        )
        return self._submit(order)

    def close_position(self, percentage: float = 100.0, *, reason: str = "signal") -> int | None:
        """Reduce-only market order for ``percentage`` of the position at the next open."""
        if not 0 < percentage <= 100:
            raise BacktestError("close_position: percentage must be in (0, 100]")
        if self.size == 0.0:
            return None
        side = -1 if self.size > 0 else 1
        order = Order(
            self._new_id(),
            "market",
            side,
            None,
            reduce_only=True,
            close_fraction=percentage / 100.0,
            reason=reason,
        )
        return self._submit(order)

    def limit(self, side: int, amount: float, price: float) -> int:
        """Resting limit order (maker)."""
        self._check_amount(amount, "limit order")
        if amount is None:
            raise BacktestError("limit order: amount is required")
        price = self._check_price(price, "limit order")
        return self._submit(
            Order(
                self._new_id(),
                "limit",
                side,
                float(amount),
                price=price,
                reason="limit",
            )
        )

    def stop_market(self, side: int, amount: float | None, stop_price: float) -> int:
        """Stop-market order; side 0 closes the position (reduce-only, exit reason stop_loss)."""
        self._check_amount(amount, "stop order")
        side, reduce_only = self._default_side(side, amount, "stop order")
        stop_price = self._check_price(stop_price, "stop order")
        reason = "stop_loss" if reduce_only else "stop"
        return self._submit(
            Order(
                self._new_id(),
                "stop_market",
                side,
                amount,
                stop_price=stop_price,
                reduce_only=reduce_only,
                reason=reason,
            )
        )

    def stop_limit(self, side: int, amount: float | None, stop_price: float, limit_price: float) -> int:
        """Stop-limit order: becomes a limit at ``limit_price`` once ``stop_price`` trades."""
        self._check_amount(amount, "stop-limit order")
        side, reduce_only = self._default_side(side, amount, "stop-limit order")
        stop_price = self._check_price(stop_price, "stop-limit order")
        limit_price = self._check_price(limit_price, "stop-limit order")
        reason = "stop_loss" if reduce_only else "stop"
        order = Order(
            self._new_id(),
            "stop_limit",
            side,
            amount,
            price=limit_price,
            stop_price=stop_price,
            reduce_only=reduce_only,
            reason=reason,
        )
        return self._submit(order)

    def take_profit(self, side: int, amount: float | None, price: float) -> int:
        """Take-profit (market-if-touched) order; side 0 closes the position."""
        self._check_amount(amount, "take-profit order")
        side, reduce_only = self._default_side(side, amount, "take-profit order")
        price = self._check_price(price, "take-profit order")
        return self._submit(
            Order(
                self._new_id(),
                "take_profit",
                side,
                amount,
                price=price,
                reduce_only=reduce_only,
                reason="take_profit",
            )
        )

    def trailing_stop(self, side: int, amount: float | None, trail: float) -> int:
        """Trailing stop ``trail`` (fraction) behind the best price since it was placed."""
        self._check_amount(amount, "trailing stop")
        side, reduce_only = self._default_side(side, amount, "trailing stop")
        if not isinstance(trail, (int, float)) or not 0 < trail < 1:
            raise BacktestError("trailing stop: trail must be a fraction between 0 and 1 (0.02 is 2%)")
        order = Order(
            self._new_id(),
            "trailing_stop",
            side,
            amount,
            trail=float(trail),
            reduce_only=reduce_only,
            reason="trailing_stop",
            extreme=self._mark(),
        )
        return self._submit(order)

    def cancel(self, order_id: int) -> bool:
        """Cancel an open order (placed or resting); False if it is not open."""
        order = self.orders.get(order_id)
        if order is None or order.status != "open":
            return False
        self._drop(order, "cancelled")
        return True

    def cancel_all(self) -> int:
        """Cancel every open order."""
        open_orders = [o for o in self.orders.values() if o.status == "open"]
        for order in open_orders:
            self._drop(order, "cancelled")
        return len(open_orders)

    def position_size(self) -> float:
        return self.size

    def cash(self) -> float:
        return self._cash

    def equity(self) -> float:
        return self._equity_at(self._mark())

    def margin_ratio(self) -> float:
        if not self.futures or self.size == 0.0:
            return 0.0
        mark = self._mark()
        collateral = self._cash if self.cross else self.margin
        return self.tiers.margin_ratio(abs(self.size) * mark, collateral + self._unrealized(mark))

    def entry_price(self) -> float | None:
        return self.entry if self.size != 0.0 else None

    def liquidation_price(self) -> float | None:
        return self.liq

    def open_orders(self) -> list[OrderInfo]:
        return [o.info() for o in self.orders.values() if o.status == "open"]

    def history(self, n: int) -> History:
        i = self.candle.index
        return History(self.data, max(0, i - int(n) + 1), i + 1)

    # -------------------------------------------------------- order book upkeep
    def _drop(self, order: Order, status: str) -> None:
        order.status = status
        self.orders.pop(order.id, None)
        if order in self.resting:
            self.resting.remove(order)
            if order.type == "trailing_stop":
                self._n_trailing -= 1
        elif order in self.incoming:
            self.incoming.remove(order)
        self._refresh_triggers()

    def _refresh_triggers(self) -> None:
        """Recompute the cheap per-candle test ``low <= lo_trig or high >= hi_trig``."""
        lo, hi = -math.inf, math.inf
        for order in self.resting:
            if order.direction == LOW:
                lo = max(lo, order.level)
            elif order.level < hi:
                hi = order.level
        if self.liq is not None:
            if self.size > 0:
                lo = max(lo, self.liq)
            else:
                hi = min(hi, self.liq)
        self.lo_trig, self.hi_trig = lo, hi
        self.busy = bool(self.incoming) or self._n_trailing > 0

    def _update_liq(self) -> None:
        if not self.futures or self.size == 0.0:
            self.liq = None
            return
        collateral = self._cash if self.cross else self.margin
        side = 1 if self.size > 0 else -1
        self.liq = self.tiers.liquidation_price(side, self.entry, abs(self.size), collateral)

    # --------------------------------------------------------------- per candle
    def process(self, i: int) -> None:
        """Run candle ``i``: funding, gap fills, market orders, then the intra-candle path."""
        self._i = i
        o = self._o[i]
        changed = False
        if i == self.fund_i:
            changed |= self._apply_funding(i, self._mo[i])
        # Orders placed before this candle become active now.
        markets: list[Order] = []
        if self.incoming:
            for order in self.incoming:
                if order.type == "market":
                    markets.append(order)
                else:
                    self.resting.append(order)
                    if order.type == "trailing_stop":
                        self._n_trailing += 1
            self.incoming = []
            self._refresh_triggers()
        # Rule 4 (gaps) for orders resting from before, then rule 1 (market orders at the open).
        changed |= self._walk_point(i, o, at_open=True)
        for order in markets:
            if order.status == "open":
                changed |= self._fill_market(i, order, o)
        if markets:
            changed |= self._walk_point(i, o, at_open=True)
        # Rule 2: the intra-candle path, adverse extreme first.
        side = 1 if self.size > 0 else (-1 if self.size < 0 else 0)
        path = candle_path(o, self._h[i], self._l[i], self._c[i], side)
        mpath = (
            candle_path(self._mo[i], self._mh[i], self._ml[i], self._mc[i], side) if self.has_mark else path
        )
        prev = o
        for k in range(1, 4):
            point = path[k]
            if self.resting or self.liq is not None:
                changed |= self._walk_segment(i, prev, point, mpath[k - 1], mpath[k])
            if self._n_trailing:
                for order in self.resting:
                    if order.type == "trailing_stop":
                        order.extreme = (
                            max(order.extreme, point) if order.side < 0 else min(order.extreme, point)
                        )
                        order.refresh_trigger()
            prev = point
        if self._n_trailing:
            self._refresh_triggers()
        if changed:
            self._record_state(i)
        self.busy = bool(self.incoming) or self._n_trailing > 0

    def _apply_funding(self, i: int, mark: float) -> bool:
        rate = self._fund_rates[self._fund_ptr]
        self._fund_ptr += 1
        self.fund_i = self._fund_idx[self._fund_ptr] if self._fund_ptr < len(self._fund_idx) else -1
        if self.size == 0.0:
            return False
        payment = self.size * mark * rate  # positive: the long pays
        self._cash -= payment
        self.funding_total += payment
        if not self.cross:
            self.margin -= payment
        if self._trade is not None:
            self._trade["funding"] += payment
        self._cash = max(self._cash, 0.0)
        self._update_liq()
        self._refresh_triggers()
        return True

    def _candidates(self, direction: int) -> tuple[Order | None, float]:
        """The resting order crossed first in ``direction`` (highest LOW level / lowest HIGH level)."""
        best: Order | None = None
        best_level = -math.inf if direction == LOW else math.inf
        for order in self.resting:
            if order.direction != direction:
                continue
            level = order.level
            if (direction == LOW and level > best_level) or (direction == HIGH and level < best_level):
                best, best_level = order, level
        return best, best_level

    def _walk_point(self, i: int, point: float, at_open: bool) -> bool:
        """Fill everything already crossed at ``point`` (the open): LOW side first, then HIGH."""
        changed = False
        mark = self._mo[i]
        for _ in range(10_000):
            liq = self.liq
            if liq is not None and ((self.size > 0 and mark <= liq) or (self.size < 0 and mark >= liq)):
                self._liquidate(i, gap_open=point)
                changed = True
                continue
            order, level = self._candidates(LOW)
            if order is not None and point <= level:
                changed |= self._fill_resting(i, order, point, at_open=at_open)
                continue
            order, level = self._candidates(HIGH)
            if order is not None and point >= level:
                changed |= self._fill_resting(i, order, point, at_open=at_open)
                continue
            break
        return changed

    def _liq_level(
        self, direction: int, start: float, end: float, mstart: float, mend: float
    ) -> float | None:
        """Where on this last-price segment the liquidation triggers, or None if it does not.

        Without mark candles that is the liquidation price itself, on the position's
        adverse side. With them, the mark segment ``mstart -> mend`` is walked in
        step: the liquidation happens at the same fraction of the last-price segment
        as the mark price reaches the liquidation price on its own segment.
        """
        liq = self.liq
        if liq is None:
            return None
        long = self.size > 0
        if not self.has_mark:
            adverse = (direction == LOW and long) or (direction == HIGH and not long)
            return liq if adverse else None
        if (long and mstart <= liq) or (not long and mstart >= liq):
            return start
        if (long and mend > liq) or (not long and mend < liq):
            return None
        return start + (end - start) * (mstart - liq) / (mstart - mend)

    def _walk_segment(self, i: int, start: float, end: float, mstart: float, mend: float) -> bool:
        """Fill orders crossed while the price moves continuously from ``start`` to ``end``."""
        changed = False
        if end == start and (not self.has_mark or mend == mstart):
            return False
        direction = LOW if end < start else HIGH
        if self._n_trailing:
            # The segment starts at a price the path has reached: trailing extremes follow it.
            for order in self.resting:
                if order.type == "trailing_stop":
                    order.extreme = max(order.extreme, start) if order.side < 0 else min(order.extreme, start)
                    order.refresh_trigger()
        for _ in range(10_000):
            order, level = self._candidates(direction)
            # The liquidation counts as one more level on the segment.
            liq = self._liq_level(direction, start, end, mstart, mend)
            liq_first = liq is not None and (
                order is None or (direction == LOW and liq > level) or (direction == HIGH and liq < level)
            )
            if liq_first:
                level = liq
            if direction == LOW:
                hit = level >= end
            else:
                hit = level <= end
            if not hit:
                break
            if liq_first:
                self._liquidate(i, gap_open=None)
                changed = True
                continue
            # A level already beyond the segment start became active mid-path: it fills at the start.
            beyond = level >= start if direction == LOW else level <= start
            price = start if beyond else level
            changed |= self._fill_resting(i, order, price, at_open=False, exact=not beyond)  # type: ignore[arg-type]
        return changed

    # -------------------------------------------------------------------- fills
    def _fill_market(self, i: int, order: Order, open_: float) -> bool:
        qty = self._order_qty(order, open_, i)
        if qty is None:
            return False
        price = self.slippage.apply(open_, order.side, qty, self._v[i])
        if order.amount is None and not order.reduce_only:
            # Size from the slipped price so 100% of equity stays affordable.
            qty = self._order_qty(order, price, i) or 0.0
        return self._execute(i, order, qty, price, maker=False)

    def _fill_resting(
        self, i: int, order: Order, point: float, *, at_open: bool, exact: bool = False
    ) -> bool:
        """Fill a triggered resting order at ``point`` (gap/marketable) or at its level (``exact``)."""
        kind = order.type
        if kind == "stop_limit" and not order.triggered:
            order.triggered = True
            trigger = order.level if exact else point
            marketable = (order.side > 0 and trigger <= order.price) or (
                order.side < 0 and trigger >= order.price
            )
            if not marketable:
                order.refresh_trigger()
                self._refresh_triggers()
                return False
            qty = self._order_qty(order, trigger, i)
            if qty is None:
                return False
            return self._execute(i, order, qty, trigger, maker=False)
        price = order.level if exact else point
        qty = self._order_qty(order, price, i)
        if qty is None:
            return False
        if kind in ("stop_market", "take_profit", "trailing_stop"):
            price = self.slippage.apply(price, order.side, qty, self._v[i])
            maker = False
        else:
            maker = True  # limit and triggered stop-limit orders rest on the book
        return self._execute(i, order, qty, price, maker=maker)

    def _order_qty(self, order: Order, price: float, i: int) -> float | None:
        """Base quantity to trade now, or None after cancelling/rejecting the order."""
        size = self.size
        if order.reduce_only:
            if size == 0.0 or (size > 0) == (order.side > 0):
                self._drop(order, "cancelled")
                return None
            if order.close_fraction is not None:
                qty = abs(size) * order.close_fraction
            elif order.amount is None:
                qty = abs(size)
            else:
                qty = min(order.amount, abs(size))
            return qty
        if order.amount is not None:
            return order.amount
        # Configured sizing for a new position, or closing an opposite one first.
        leverage = order.leverage or self.default_leverage
        if size != 0.0 and (size > 0) != (order.side > 0):
            # Reverse: close the whole position; the sized new one follows in _execute.
            return abs(size)
        stop_price = None
        if self.sizing["type"] == "risk_per_trade":
            stop_frac = order.bracket[0] if order.bracket else None
            if stop_frac is None:
                raise BacktestError("risk_per_trade sizing needs a stop loss: pass stop_loss= with the order")
            stop_price = price * (1 - order.side * stop_frac)
        ts = self._ts[i]
        return order_size(
            self.sizing,
            equity=self._equity_at(price),
            available=self._available(price),
            price=price,
            leverage=leverage if self.futures else 1.0,
            fee_rate=self.fees.rate(order.type == "limit", ts),
            fixed_fee=self.fees.fixed,
            stop_price=stop_price,
        )

    def _execute(self, i: int, order: Order, qty: float, price: float, *, maker: bool) -> bool:
        """Apply a fill of ``qty`` at ``price``: reduce/close/reverse or open/add, then bookkeeping."""
        if qty <= DUST:
            self._reject(order)
            return False
        side = order.side
        ts = self._ts[i]
        size = self.size
        filled = 0.0
        changed = False
        self._fee_acc = 0.0
        # 1) the part that reduces an opposite position
        if size != 0.0 and (size > 0) != (side > 0):
            close_qty = min(qty, abs(size))
            fee = self.fees.charge(close_qty * price, maker, ts)
            self._fee_acc += fee
            self._reduce(i, close_qty, price, fee, order.reason)
            filled += close_qty
            qty -= close_qty
            changed = True
            if order.reduce_only:
                qty = 0.0
            elif order.amount is None and order.type == "market":
                # Reversal with configured sizing: size the new position on the post-close equity.
                qty = self._order_qty(order, price, i) or 0.0
        # 2) the part that opens or adds
        if qty > DUST and not order.reduce_only:
            if side < 0 and not self.allow_short and self.size <= 0.0:
                if not filled:
                    self._reject(order)
                    return changed
            else:
                opened = self._open(i, order, qty, price, maker)
                filled += opened
                changed |= opened > 0
        if filled <= 0.0:
            self._reject(order)
            return changed
        order.status = "filled"
        order.filled_size = filled
        order.filled_price = price
        order.fill_time = ts
        self.orders.pop(order.id, None)
        if order in self.resting:
            self.resting.remove(order)
            if order.type == "trailing_stop":
                self._n_trailing -= 1
        self.fills.append((ts, order.id, side, filled, price, self._fee_acc, order.reason))
        if order.bracket is not None and self.size != 0.0 and (self.size > 0) == (side > 0):
            self._attach_bracket(order.bracket, price)
        self._after_position_change()
        if self.on_fill is not None:
            self.on_fill(order.info())
        return changed

    def _open(self, i: int, order: Order, qty: float, price: float, maker: bool) -> float:
        """Open or add to a position in ``order.side``; returns the quantity actually opened."""
        ts = self._ts[i]
        side = order.side
        if self.size == 0.0:
            leverage = (order.leverage or self.default_leverage) if self.futures else 1.0
            if self.futures:
                # Whatever the order asks: no more than the market allows for this notional.
                leverage = min(leverage, self.tiers.leverage_cap(qty * price))
        else:
            leverage = self.pos_leverage  # leverage is a per-position setting, as on exchanges
        if self.futures:
            # The larger the position, the lower the leverage: at this leverage the position
            # may grow only up to the last bracket that still allows it.
            room = self.tiers.max_notional(leverage) / price - abs(self.size)
            if qty > room:
                qty = room * (1.0 - 1e-12)
                if qty <= DUST:
                    return 0.0
        rate = self.fees.rate(maker, ts)
        available = self._available(price)
        # Cap at what the free balance pays for: margin (spot: cost) plus fee.
        max_qty = (
            (available - self.fees.fixed) / (price * (1.0 / leverage + rate))
            if available > self.fees.fixed
            else 0.0
        )
        if qty > max_qty:
            qty = max_qty * (1.0 - 1e-12)
        if qty <= DUST:
            return 0.0
        notional = qty * price
        fee = self.fees.charge(notional, maker, ts)
        self._fee_acc += fee
        old = abs(self.size)
        if self.futures:
            self._cash -= fee
            self.margin += notional / leverage
        else:
            self._cash -= notional + fee
        new = old + qty
        self.entry = (self.entry * old + price * qty) / new
        self.size = new if side > 0 else -new
        self.pos_leverage = leverage
        self._cash = max(self._cash, 0.0)
        trade = self._trade
        if trade is None:
            trade = self._trade = {
                "entry_index": i,
                "entry_time": ts,
                "side": "long" if side > 0 else "short",
                "entry_cost": 0.0,
                "entry_qty": 0.0,
                "exit_value": 0.0,
                "exit_qty": 0.0,
                "max_size": 0.0,
                "fees": 0.0,
                "funding": 0.0,
                "gross": 0.0,
                "leverage": leverage,
            }
        trade["entry_cost"] += notional
        trade["entry_qty"] += qty
        trade["fees"] += fee
        trade["max_size"] = max(trade["max_size"], new)
        return qty

    def _reduce(
        self, i: int, qty: float, price: float, fee: float, reason: str, *, exit_price: float | None = None
    ) -> None:
        """Close ``qty`` of the position at ``price``; a full close records the trade.

        ``exit_price`` is the price the trade records when it differs from the
        settlement price (a liquidation settles at the bankruptcy price).
        """
        size = self.size
        direction = 1.0 if size > 0 else -1.0
        old = abs(size)
        pnl = direction * qty * (price - self.entry)
        if self.futures:
            self._cash += pnl - fee
            self.margin *= max(old - qty, 0.0) / old
        else:
            self._cash += qty * price - fee
        self._cash = max(
            self._cash, 0.0
        )  # the balance never goes negative (losses beyond it are the exchange's)
        remaining = old - qty
        trade = self._trade
        if trade is not None:
            trade["exit_value"] += qty * (price if exit_price is None else exit_price)
            trade["exit_qty"] += qty
            trade["fees"] += fee
            trade["gross"] += pnl
        if remaining <= DUST * max(1.0, old):
            self.size = 0.0
            self.entry = 0.0
            self.margin = 0.0
            if trade is not None:
                self._close_trade(i, reason)
        else:
            self.size = direction * remaining

    def _close_trade(self, i: int, reason: str) -> None:
        trade = self._trade
        assert trade is not None
        self._trade = None
        entry_price = trade["entry_cost"] / trade["entry_qty"]
        exit_price = trade["exit_value"] / trade["exit_qty"] if trade["exit_qty"] else entry_price
        pnl = trade["gross"] - trade["fees"] - trade["funding"]
        committed = trade["entry_cost"] / trade["leverage"]
        self.trades.append(
            {
                "entry_index": trade["entry_index"],
                "exit_index": i,
                "entry_time": trade["entry_time"],
                "exit_time": self._ts[i],
                "side": trade["side"],
                "size": trade["max_size"],
                "entry_price": entry_price,
                "exit_price": exit_price,
                "fees": trade["fees"],
                "funding": trade["funding"],
                "pnl": pnl,
                "return_pct": pnl / committed if committed > 0 else 0.0,
                "exit_reason": reason,
                "leverage": trade["leverage"],
            }
        )

    def _liquidate(self, i: int, gap_open: float | None) -> None:
        """The exchange takes the position over at the bankruptcy price: its whole margin is lost.

        Isolated: the position's margin; cross: the wallet balance (one symbol). The
        maintenance margin left at the liquidation price goes to the insurance fund,
        so no separate fee is charged. ``gap_open`` is the candle's open when the
        liquidation was already crossed there: if the open is beyond the bankruptcy
        price the fill is recorded at the open (the insurance fund takes the gap; the
        loss stays the margin).
        """
        side = 1 if self.size > 0 else -1
        qty = abs(self.size)
        collateral = max(self._cash if self.cross else self.margin, 0.0)
        bankrupt = self.tiers.bankruptcy_price(side, self.entry, qty, collateral)
        exit_price = bankrupt
        if gap_open is not None and (gap_open - bankrupt) * side < 0:
            exit_price = gap_open
        self.fills.append((self._ts[i], 0, -side, qty, exit_price, 0.0, "liquidation"))
        self._reduce(i, qty, bankrupt, 0.0, "liquidation", exit_price=exit_price)
        self._after_position_change()

    def _reject(self, order: Order) -> None:
        self.rejected += 1
        if order.status == "open":
            self._drop(order, "rejected")

    def _attach_bracket(
        self,
        bracket: tuple[float | None, float | None, float | None],
        fill_price: float,
    ) -> None:
        """Reduce-only exits for a just-filled entry; active for the rest of this candle."""
        stop_loss, take_profit, trailing = bracket
        side = -1 if self.size > 0 else 1
        new: list[Order] = []
        if stop_loss:
            new.append(
                Order(
                    self._new_id(),
                    "stop_market",
                    side,
                    None,
                    stop_price=fill_price * (1 + side * stop_loss),
                    reduce_only=True,
                    reason="stop_loss",
                )
            )
        if take_profit:
            new.append(
                Order(
                    self._new_id(),
                    "take_profit",
                    side,
                    None,
                    price=fill_price * (1 - side * take_profit),
                    reduce_only=True,
                    reason="take_profit",
                )
            )
        if trailing:
            new.append(
                Order(
                    self._new_id(),
                    "trailing_stop",
                    side,
                    None,
                    trail=trailing,
                    reduce_only=True,
                    reason="trailing_stop",
                    extreme=fill_price,
                )
            )
            self._n_trailing += 1
        for order in new:
            self.orders[order.id] = order
            self.resting.append(order)

    def _after_position_change(self) -> None:
        """Cancel reduce-only orders that no longer reduce anything; refresh liquidation and triggers."""
        size = self.size
        stale = [o for o in self.resting if o.reduce_only and (size == 0.0 or (size > 0) == (o.side > 0))]
        for order in stale:
            order.status = "cancelled"
            self.orders.pop(order.id, None)
            self.resting.remove(order)
            if order.type == "trailing_stop":
                self._n_trailing -= 1
        self._update_liq()
        self._refresh_triggers()

    def _record_state(self, i: int) -> None:
        size = self.size
        base = self._cash - size * self.entry if self.futures else self._cash
        self.ev_idx.append(i)
        self.ev_base.append(base)
        self.ev_size.append(size)
        self.timeline.append(
            (
                self._ts[i],
                size,
                self.entry if size else 0.0,
                self.pos_leverage if size else 0.0,
            )
        )

    def close_at_end(self, i: int) -> None:
        """Close any open position at candle ``i``'s close (exit reason ``end_of_data``)."""
        for order in list(self.orders.values()):
            order.status = "cancelled"
        self.orders.clear()
        self.resting.clear()
        self.incoming.clear()
        self._n_trailing = 0
        if self.size == 0.0:
            return
        side = -1 if self.size > 0 else 1
        qty = abs(self.size)
        price = self.slippage.apply(self._c[i], side, qty, self._v[i])
        fee = self.fees.charge(qty * price, False, self._ts[i])
        self.fills.append((self._ts[i], 0, side, qty, price, fee, "end_of_data"))
        self._reduce(i, qty, price, fee, "end_of_data")
        self._update_liq()
        self._record_state(i)
