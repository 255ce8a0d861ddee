"""``GatewayBroker``: the engine's ``Broker`` protocol backed by the bot's exchange gateway.

A tick runs the strategy object the backtests use against this broker. Account
questions (position, cash, open orders) are answered from the gateway; orders
are not sent from inside the strategy call but collected as decisions, which
the tick then places through ``order_place`` with deterministic client order
ids. That keeps the strategy's view consistent during one call and lets a
retried tick place exactly the same orders, which the ids make idempotent.

Spot bots hold the base asset (long only). Futures bots (``FuturesState``) hold one
net position (one-way mode), long or short, with the engine's rules: the cash is
the wallet balance, equity adds the unrealized P&L, sizing commits margin at the
bot's leverage, exits are reduce-only, and a market order against the position
with the configured sizing reverses it in one order (the whole position closed,
a new one sized on the equity after the close, at the same price), as
``SimulatedBroker`` does. ``follow_signals`` is the engine's rule for a signal
strategy's last candle.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from apps.backtests.engine.candles import Candles
from apps.backtests.engine.orders import OrderInfo
from apps.backtests.engine.sizing import normalize_sizing, order_size
from apps.backtests.engine.slippage import SlippageModel
from apps.backtests.engine.strategy import History
from apps.backtests.engine.tiers import LeverageTiers
from apps.exchanges.gateway.base import AccountBalance, ExchangeGateway
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


@dataclass(frozen=True)
class FuturesState:
    """A futures bot's position as the exchange reports it, and its settings."""

    size: Decimal  # signed: negative for a short
    entry: float | None
    leverage: float
    cross: bool
    liquidation: float | None
    tiers: LeverageTiers | None = None


def futures_state(
    gateway: ExchangeGateway, symbol: str, *, leverage: Decimal | float, margin_mode: str
) -> FuturesState:
    """The bot's futures position read from ``gateway`` (flat: the bot's own settings)."""
    from apps.backtests.engine.tiers import resolve_tiers
    from apps.exchanges.gateway.paper import DEFAULT_MMR

    tiers = resolve_tiers(None, symbol, DEFAULT_MMR)
    for position in gateway.fetch_positions([symbol]):
        if position.symbol != symbol or not position.contracts:
            continue
        size = abs(position.contracts) * (-1 if position.side == "short" else 1)
        return FuturesState(
            size=size,
            entry=float(position.entry_price) if position.entry_price is not None else None,
            leverage=float(position.leverage or leverage),
            cross=(position.margin_mode or margin_mode) == "cross",
            liquidation=float(position.liquidation_price) if position.liquidation_price else None,
            tiers=tiers,
        )
    return FuturesState(
        size=Decimal(0),
        entry=None,
        leverage=float(leverage),
        cross=margin_mode == "cross",
        liquidation=None,
        tiers=tiers,
    )


def follow_signals(broker: GatewayBroker, seen: Collection[str], *, allow_short: bool) -> None:
    """Act on the signals a strategy gave on its last candle (``seen``: their names) as the
    backtest does.

    The engine's rules (``simulator._effective_signals`` and its signal loop): an exit
    wins over an entry of the same direction, opposite entries on one candle cancel, an
    entry against the position reverses it, and short signals count only when the bot
    may short (futures).
    """
    le, lx, se, sx = (n in seen for n in ("long_entries", "long_exits", "short_entries", "short_exits"))
    if allow_short:
        le, se = le and not lx and not se, se and not sx and not le
    else:
        le, se, sx = le and not lx, False, False
    size = broker.position_size()
    if size > 0:
        if se:
            broker.market(-1, None)
        elif lx:
            broker.close_position()
    elif size < 0:
        if le:
            broker.market(1, None)
        elif sx:
            broker.close_position()
    elif le:
        broker.market(1, None)
    elif se:
        broker.market(-1, None)


class GatewayBroker:
    """One tick's broker for one bot (one-way): see the module docstring."""

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
        futures: FuturesState | None = None,
    ) -> None:
        """``market_price`` (default: the last close) and ``slippage`` are what a market order
        placed now would trade at; sized orders are sized there, as the backtest sizes them at
        their fill price. ``entry_price`` is the position's average entry (the orders half
        keeps it). Order ids count from ``first_id``, so that a caller ticking one strategy
        object over many candles can keep them unique. ``futures``: the bot trades a futures
        market, with this position and these settings."""
        self.data = candles
        self.base, self.quote = base, quote
        self.futures = futures
        self._size_exact = futures.size if futures is not None else balance.get(base).total
        # Below the last place an order can carry is dust, not a position (the engine's view too).
        self.size = float(self._size_exact) if abs(self._size_exact) >= AMOUNT_PLACES else 0.0
        self._cash = float(balance.get(quote).total)
        self._free = float(balance.get(quote).free)
        self.price = float(candles.close[-1])
        self.market_price = self.price if market_price is None else float(market_price)
        self.slippage = slippage
        self._entry = futures.entry if futures is not None else entry_price
        self.leverage = futures.leverage if futures is not None else 1.0
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

    def _size_new(
        self, side: int, price: float, *, equity: float, available: float, stop_loss, held: float = 0.0
    ) -> float:
        size = order_size(
            self.sizing,
            equity=equity,
            available=available,
            price=price,
            leverage=self.leverage,
            fee_rate=self.fee_rate,
            fixed_fee=0.0,
            stop_price=price * (1 - side * stop_loss) if stop_loss else None,
        )
        tiers = self.futures.tiers if self.futures is not None else None
        if tiers is not None:
            # The engine's cap (``SimulatedBroker._open``): the larger the position, the lower the
            # leverage, so at this leverage it may grow only to the last bracket allowing it.
            room = tiers.max_notional(self.leverage) / price - held
            size = min(size, max(room * (1.0 - 1e-12), 0.0))
        return size

    def _amount(self, side: int, amount: float | None, stop_loss: float | None = None) -> float:
        if amount is not None:
            return float(amount)
        if side == 0 or (side < 0 and self.size > 0) or (side > 0 and self.size < 0):
            return abs(self.size)

        def size_at(price: float) -> float:
            return self._size_new(
                side,
                price,
                equity=self._equity_at(price),
                available=self._available(price),
                stop_loss=stop_loss,
                held=abs(self.size),
            )

        price = self.market_price
        if self.slippage is None:
            return size_at(price)
        # The engine's rule: slip the price for the first size, then size at the slipped price.
        return size_at(self.slippage.apply(price, side, size_at(price), 0.0))

    def _reversal(self, side: int, stop_loss: float | None) -> float:
        """A futures market order against the position with the configured sizing: the whole
        position plus a new one sized on the wallet after the close, at the same (slipped) price."""
        closing = abs(self.size)
        price = self.market_price
        if self.slippage is not None:
            price = self.slippage.apply(price, side, closing, 0.0)
        wallet = self._cash + self.size * (price - (self._entry or price)) - closing * price * self.fee_rate
        return closing + self._size_new(side, price, equity=wallet, available=wallet, stop_loss=stop_loss)

    def _exit_side(self, side: int) -> int:
        return side or (-1 if self.size > 0 else 1)

    def _closes(self, side: int, amount: float | None) -> bool:
        """A futures exit sized "the whole position": reduce-only, as the engine's exits."""
        return (
            self.futures is not None and amount is None and self.size != 0 and (self.size > 0) != (side > 0)
        )

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
        reverse = self._closes(side, amount)
        size = self._reversal(side, stop_loss) if reverse else self._amount(side, amount, stop_loss)
        if size <= 0 or not _amount_dec(size):
            return 0  # nothing an order can carry (an empty wallet sizes to float dust)
        # An order that opens (or reverses into) a position in ``side`` carries the bracket.
        entry = (side > 0 and self.size <= 0) or (self.futures is not None and side < 0 and self.size >= 0)
        return self._decide(
            side=SIDES[side],
            type="market",
            amount=_amount_dec(size),
            stop_loss=_dec(self.price * (1 - side * stop_loss)) if entry and stop_loss else None,
            take_profit=_dec(self.price * (1 + side * take_profit)) if entry and take_profit else None,
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

    def _exit(self, kind: str, side: int, amount: float | None, **prices: Any) -> int:
        side = self._exit_side(side)
        return self._decide(
            side=SIDES[side],
            type=kind,
            amount=_amount_dec(self._amount(side, amount)),
            reduce_only=True if self._closes(side, amount) else None,
            **prices,
        )

    def stop_market(self, side: int, amount: float | None, stop_price: float) -> int:
        return self._exit("stop_market", side, amount, stop_price=_dec(stop_price))

    def stop_limit(self, side: int, amount: float | None, stop_price: float, limit_price: float) -> int:
        return self._exit("stop_limit", side, amount, stop_price=_dec(stop_price), price=_dec(limit_price))

    def take_profit(self, side: int, amount: float | None, price: float) -> int:
        return self._exit("take_profit", side, amount, stop_price=_dec(price))

    def trailing_stop(self, side: int, amount: float | None, trail: float) -> int:
        return self._exit("trailing_stop", side, amount, trailing_percent=_dec(trail * 100))

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
    def _equity_at(self, price: float) -> float:
        if self.futures is not None:
            return self._cash + self.size * (price - (self._entry or price))
        return self._cash + self.size * price

    def _available(self, price: float) -> float:
        """Free balance for new margin and fees (cross: less the position's unrealized loss)."""
        if self.futures is not None and self.futures.cross and self.size:
            return self._free + min(0.0, self.size * (price - (self._entry or price)))
        return self._free

    def position_size(self) -> float:
        return self.size

    def cash(self) -> float:
        return self._cash

    def equity(self) -> float:
        return self._equity_at(self.price)

    def margin_ratio(self) -> float:
        futures = self.futures
        if futures is None or not self.size or futures.tiers is None or not self._entry:
            return 0.0
        margin = abs(self.size) * self._entry / futures.leverage
        collateral = self._cash if futures.cross else margin
        return futures.tiers.margin_ratio(
            abs(self.size) * self.price, collateral + self.size * (self.price - self._entry)
        )

    def entry_price(self) -> float | None:
        # Spot: the exchange does not keep it; the caller passes the orders half's position.
        return self._entry if self.size else None

    def liquidation_price(self) -> float | None:
        return self.futures.liquidation if self.futures is not None and self.size else None

    # ------------------------------------------------------------- market data
    def history(self, n: int) -> History:
        hi = len(self.data)
        return History(self.data, max(0, hi - n), hi)


def _local_id(order: GatewayOrder) -> int:
    """A stable integer id for a gateway order (the protocol's ids are ints)."""
    return int(order.id) if str(order.id).isdigit() else abs(hash(order.id)) % (1 << 62)
