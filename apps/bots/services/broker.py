"""``GatewayBroker``: the engine's ``Broker`` protocol backed by the bot's exchange gateway.

A tick runs the strategy object the backtests use against this broker. Account
questions (position, cash, open orders) are answered from the gateway; orders
are not sent from inside the strategy call but collected as decisions, which
the tick then places through ``order_place`` with deterministic client order
ids. That keeps the strategy's view consistent during one call and lets a
retried tick place exactly the same orders, which the ids make idempotent.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

from apps.backtests.engine.candles import Candles
from apps.backtests.engine.orders import OrderInfo
from apps.backtests.engine.sizing import normalize_sizing, order_size
from apps.backtests.engine.slippage import SlippageModel
from apps.backtests.engine.strategy import History
from apps.exchanges.gateway.base import AccountBalance
from apps.exchanges.gateway.base import Order as GatewayOrder

SIDES = {1: "buy", -1: "sell"}
# Amounts leave the engine as floats; 12 places is below any market's precision,
# and ``order_place`` quantizes to the market's own.
AMOUNT_PLACES = Decimal("1e-12")


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(float(value))).quantize(AMOUNT_PLACES)


def _amount_dec(value: float | None) -> Decimal | None:
    # Down, never up: an amount rounded up by a last place could ask for more than the balance.
    return None if value is None else Decimal(repr(float(value))).quantize(AMOUNT_PLACES, ROUND_DOWN)


class GatewayBroker:
    """One tick's broker for one bot (spot, one-way): see the module docstring."""

    def __init__(
        self,
        *,
        candles: Candles,
        balance: AccountBalance,
        open_orders: list[GatewayOrder],
        base: str,
        quote: str,
        sizing: dict[str, Any] | None,
        fee_rate: float,
        defaults: dict[str, float | None],
        market_price: float | None = None,
        slippage: SlippageModel | None = None,
        entry_price: float | None = None,
        first_id: int = 1,
    ) -> None:
        """``market_price`` (default: the last close) and ``slippage`` are what a market order
        placed now would trade at; sized orders are sized there, as the backtest sizes them at
        their fill price. ``entry_price`` is the position's average entry (the orders half
        keeps it). Order ids count from ``first_id``, so that a caller ticking one strategy
        object over many candles can keep them unique."""
        self.data = candles
        self.base, self.quote = base, quote
        self._size_exact = balance.get(base).total
        # Below the last place an order can carry is dust, not a position (the engine's view too).
        self.size = float(self._size_exact) if abs(self._size_exact) >= AMOUNT_PLACES else 0.0
        self._cash = float(balance.get(quote).total)
        self._free = float(balance.get(quote).free)
        self.price = float(candles.close[-1])
        self.market_price = self.price if market_price is None else float(market_price)
        self.slippage = slippage
        self._entry = entry_price
        self.first_id = first_id
        self.sizing = normalize_sizing(sizing or None)
        self.fee_rate = fee_rate
        self.defaults = defaults
        self._open = open_orders
        self.decisions: list[dict[str, Any]] = []
        self.cancels: list[str] = []
        # Decisions of this tick the strategy cancelled again before they were placed.
        self.dropped: set[int] = set()

    # ------------------------------------------------------------------ orders
    def _decide(self, **decision: Any) -> int:
        self.decisions.append({k: v for k, v in decision.items() if v is not None})
        return self.first_id + len(self.decisions) - 1

    def _amount(self, side: int, amount: float | None, stop_loss: float | None = None) -> float:
        if amount is not None:
            return float(amount)
        if side == 0 or (side < 0 and self.size > 0):
            return abs(self.size)

        def size_at(price: float) -> float:
            return order_size(
                self.sizing,
                equity=self.equity(),
                available=self._free,
                price=price,
                leverage=1.0,
                fee_rate=self.fee_rate,
                fixed_fee=0.0,
                stop_price=price * (1 - stop_loss) if stop_loss else None,
            )

        price = self.market_price
        if self.slippage is None:
            return size_at(price)
        # The engine's rule: slip the price for the first size, then size at the slipped price.
        return size_at(self.slippage.apply(price, side, size_at(price), 0.0))

    def _exit_side(self, side: int) -> int:
        return side or (-1 if self.size > 0 else 1)

    def market(
        self,
        side: int,
        amount: float | None,
        *,
        leverage: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing_stop: float | None = None,
    ) -> int:
        stop_loss = stop_loss if stop_loss is not None else self.defaults.get("stop_loss")
        take_profit = take_profit if take_profit is not None else self.defaults.get("take_profit")
        size = self._amount(side, amount, stop_loss)
        if size <= 0:
            return 0
        entry = side > 0 and self.size <= 0
        return self._decide(
            side=SIDES[side],
            type="market",
            amount=_amount_dec(size),
            stop_loss=_dec(self.price * (1 - stop_loss)) if entry and stop_loss else None,
            take_profit=_dec(self.price * (1 + take_profit)) if entry and take_profit else None,
        )

    def close_position(self, percentage: float = 100.0) -> int | None:
        if abs(self.size) <= 0:
            return None
        side = -1 if self.size > 0 else 1
        # All of it is the exchange's exact balance: a float round trip could leave dust or overdraw.
        whole = abs(self._size_exact).quantize(AMOUNT_PLACES, ROUND_DOWN)
        return self._decide(
            side=SIDES[side],
            type="market",
            amount=whole if percentage >= 100 else _amount_dec(abs(self.size) * percentage / 100.0),
            reduce_only=True,
        )

    def limit(self, side: int, amount: float, price: float) -> int:
        return self._decide(side=SIDES[side], type="limit", amount=_amount_dec(amount), price=_dec(price))

    def stop_market(self, side: int, amount: float | None, stop_price: float) -> int:
        side = self._exit_side(side)
        return self._decide(
            side=SIDES[side],
            type="stop_market",
            amount=_amount_dec(self._amount(side, amount)),
            stop_price=_dec(stop_price),
        )

    def stop_limit(self, side: int, amount: float | None, stop_price: float, limit_price: float) -> int:
        side = self._exit_side(side)
        return self._decide(
            side=SIDES[side],
            type="stop_limit",
            amount=_amount_dec(self._amount(side, amount)),
            stop_price=_dec(stop_price),
            price=_dec(limit_price),
        )

    def take_profit(self, side: int, amount: float | None, price: float) -> int:
        side = self._exit_side(side)
        return self._decide(
            side=SIDES[side],
            type="take_profit",
            amount=_amount_dec(self._amount(side, amount)),
            stop_price=_dec(price),
        )

    def trailing_stop(self, side: int, amount: float | None, trail: float) -> int:
        side = self._exit_side(side)
        return self._decide(
            side=SIDES[side],
            type="trailing_stop",
            amount=_amount_dec(self._amount(side, amount)),
            trailing_percent=_dec(trail * 100),
        )

    def cancel(self, order_id: int) -> bool:
        index = order_id - self.first_id
        if 0 <= index < len(self.decisions):  # placed earlier in this tick: never sent
            if index in self.dropped:
                return False
            self.dropped.add(index)
            return True
        for order in self._open:
            if _local_id(order) == order_id:
                self.cancels.append(order.id)
                return True
        return False

    def cancel_all(self) -> int:
        self.cancels.extend(order.id for order in self._open)
        return len(self._open)

    def open_orders(self) -> list[OrderInfo]:
        return [
            OrderInfo(
                id=_local_id(order),
                type=order.type,
                side=order.side,
                amount=float(order.amount),
                price=float(order.price) if order.price is not None else None,
                stop_price=float(order.stop_price) if order.stop_price is not None else None,
                trail=None,
                reduce_only=False,
                status=order.status,
                filled_size=float(order.filled),
                filled_price=float(order.average) if order.average is not None else None,
                fill_time=None,
                reason=order.reason,
            )
            for order in self._open
        ]

    # ------------------------------------------------------------- account
    def position_size(self) -> float:
        return self.size

    def cash(self) -> float:
        return self._cash

    def equity(self) -> float:
        return self._cash + self.size * self.price

    def margin_ratio(self) -> float:
        return 0.0  # spot

    def entry_price(self) -> float | None:
        # The exchange does not keep it for spot; the caller passes the orders half's position.
        return self._entry if self.size else None

    def liquidation_price(self) -> float | None:
        return None

    # ------------------------------------------------------------- market data
    def history(self, n: int) -> History:
        hi = len(self.data)
        return History(self.data, max(0, hi - n), hi)


def _local_id(order: GatewayOrder) -> int:
    """A stable integer id for a gateway order (the protocol's ids are ints)."""
    return int(order.id) if str(order.id).isdigit() else abs(hash(order.id)) % (1 << 62)
