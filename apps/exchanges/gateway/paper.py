"""The paper exchange: a simulated spot or USD-M futures account in the database, filled by the backtest's rules.

Every fill decision comes from ``apps.backtests.engine.fills`` (the same pure
functions the backtest broker uses), taker slippage from the engine's
``SlippageModel``, futures margin, leverage caps and liquidation prices from
``engine.tiers`` and funding times from ``engine.margin``; only the bookkeeping
(Decimal balances and positions in PostgreSQL) is ours. Rules, as in the backtest:

* market orders fill at the source's current price (the open of the forming
  candle when replaying) moved by slippage, and pay the taker fee;
* limit, stop-market, stop-limit, take-profit and trailing-stop orders rest from
  the first candle that opens after they were placed and fill when that
  candle's path crosses their level (``fills.evaluate_order``): limits at their
  price (or the better gapped open) paying maker; stops, take-profits and
  trailing stops at the level (or the gapped open) plus slippage, paying taker;
  a stop-limit whose limit is marketable at the trigger fills there as taker,
  otherwise it rests (maker). A trailing stop's trigger follows the best price
  since it was placed;
* within one candle, orders (and a futures liquidation) act in the order the
  candle's path reaches them; at the same point the liquidation comes first;
* a new price between candles (``on_price``, and every read: ``match``) is a
  single point: orders crossed there fill as on a gap at the candle's open
  (a partly filled order's rest waits for the next candle);
* with ``max_volume_fraction`` a fill takes at most that share of the candle's
  volume (``fills.partial_fill_size``); the rest waits for the next candles;
* futures (``PaperAccount.market_type``): one net position per symbol with its
  leverage (capped by the market's leverage tiers) and margin mode; opening
  holds ``notional / leverage`` of the quote balance as margin; the liquidation
  price is the engine's Binance formula; a liquidation settles at the
  bankruptcy price, losing the position's whole margin (cross: the balance);
  funding is charged at the open of the first candle at or after each funding
  time (or the first price seen after it, if that comes first), ``size x price
  x rate`` (longs pay a positive rate), from the account's constant rate or the
  stored funding history;
* two orders of one OCO group: a fill of either (even partial) cancels the
  other in the same transaction; the group holds one reservation.

Fees are charged in the quote asset, as the backtest does. Balances an order
may spend are reserved (``used``) while it is open, like an exchange's
"locked" balance. Each call locks the account row, so concurrent bots on one
account serialize instead of double-spending, and matching is idempotent:
orders and positions remember the last candle they were checked against.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from apps.backtests.engine import fills
from apps.backtests.engine.config import BacktestConfig
from apps.backtests.engine.margin import funding_schedule, normalize_funding
from apps.backtests.engine.slippage import SlippageModel
from apps.backtests.engine.tiers import LeverageTiers, resolve_tiers
from apps.core.events import publish_event
from apps.core.money import ZERO, quantize_amount
from apps.exchanges.gateway.base import (
    OHLCV,
    AccountBalance,
    Balance,
    ConnectionCheck,
    ExchangeGateway,
    MarketInfo,
    Order,
    OrderBook,
    OrderRequest,
    Position,
    Ticker,
    Trade,
    to_decimal,
)
from apps.exchanges.gateway.errors import InsufficientFunds, InvalidOrder, OrderNotFound
from apps.exchanges.gateway.prices import Bar, MarketDataPriceSource, PriceSource
from apps.exchanges.models import PaperAccount, PaperBalance, PaperOrder, PaperPosition, PaperTrade
from apps.orders.enums import OPEN_STATUSES, OrderSide, OrderStatus, OrderType, TimeInForce

DEFAULT_SLIPPAGE = {"type": "percentage", "value": 0.0005}
# What the simulation fills (the engine's fill rules); the other OrderTypes are refused.
SIMULATED_TYPES = (
    OrderType.MARKET,
    OrderType.LIMIT,
    OrderType.STOP_MARKET,
    OrderType.STOP_LIMIT,
    OrderType.TAKE_PROFIT,
    OrderType.TRAILING_STOP,
)
TAKER_RESTING = (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT, OrderType.TRAILING_STOP)
SIDE_SIGN = {OrderSide.BUY: 1, OrderSide.SELL: -1}
FUTURES = PaperAccount.MarketType.FUTURES
CROSS = PaperPosition.MarginMode.CROSS
# The engine's maintenance rate for markets without shipped or fetched tiers.
DEFAULT_MMR = BacktestConfig.maintenance_margin_rate
MAX_EVENTS_PER_BAR = 1_000


q = quantize_amount


def dec(value: float) -> Decimal:
    """A float price from the fill rules -> Decimal via its shortest repr (no binary noise)."""
    return Decimal(repr(float(value)))


def _pair(symbol: str) -> tuple[str, str]:
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote:
        raise InvalidOrder(f"Symbol {symbol!r} is not BASE/QUOTE.", fields={"symbol": "format BASE/QUOTE"})
    return base.upper(), quote.upper()


def split_symbol(symbol: str, *, futures: bool = False) -> tuple[str, str]:
    """``(base, quote)``; futures symbols are ccxt's linear perpetuals ``BASE/QUOTE:QUOTE``."""
    if not futures:
        if ":" in symbol:
            raise InvalidOrder(
                "This paper account trades spot; futures need a futures paper account.",
                fields={"symbol": "not spot"},
            )
        return _pair(symbol)
    pair, sep, settle = symbol.partition(":")
    if not sep:
        raise InvalidOrder(
            f"Futures symbols are BASE/QUOTE:SETTLE (e.g. BTC/USDT:USDT), not {symbol!r}.",
            fields={"symbol": "format BASE/QUOTE:SETTLE"},
        )
    base, quote = _pair(pair)
    if settle.upper() != quote:
        raise InvalidOrder(
            "The paper exchange simulates USD-M (linear) futures: they settle in the quote asset.",
            fields={"symbol": "linear futures only"},
        )
    return base, quote


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


class PaperGateway(ExchangeGateway):
    """``ExchangeGateway`` over one ``PaperAccount``. ``prices`` defaults to the market-data service."""

    name = "paper"

    def __init__(
        self,
        account: PaperAccount,
        *,
        prices: PriceSource | None = None,
        markets: dict[str, MarketInfo] | None = None,
        match_on_read: bool = True,
    ) -> None:
        # ``match_on_read=False``: reads (balances, positions) show the account as it stands,
        # without first filling what the prices reached (a valuation must not trade).
        self.match_on_read = match_on_read
        self.account = account
        self.prices = prices or MarketDataPriceSource(exchange=account.exchange)
        self._markets = markets
        self._catalog: dict[str, MarketInfo | None] = {}  # catalog rows read once per gateway
        self._slip: SlippageModel | None = None
        self._tiers_cache: dict[str, LeverageTiers] = {}
        # Rows a locked call works on, so that one pass never holds two copies of a row.
        self._positions: dict[str, PaperPosition] = {}
        self._registry: dict[int, PaperOrder] = {}
        self._spot_side: dict[str, int] = {}
        self._volumes: dict[str, float | None] = {}

    # ----------------------------------------------------------------- helpers
    @property
    def _fees(self) -> tuple[Decimal, Decimal]:
        return self.account.maker_fee, self.account.taker_fee

    def _slippage(self) -> SlippageModel:
        # One model per gateway: a seeded "random" model must keep its generator between fills.
        if self._slip is None:
            self._slip = SlippageModel(self.account.slippage or DEFAULT_SLIPPAGE)
        return self._slip

    def _mvf(self) -> float | None:
        mvf = self.account.max_volume_fraction
        return None if mvf is None else float(mvf)

    def _lock(self) -> PaperAccount:
        self.account = PaperAccount.objects.select_for_update().get(pk=self.account.pk)
        return self.account

    def _balance(self, asset: str) -> PaperBalance:
        balance, _ = PaperBalance.objects.select_for_update().get_or_create(account=self.account, asset=asset)
        return balance

    def _market_info(self, symbol: str) -> MarketInfo | None:
        if self._markets is not None:
            return self._markets.get(symbol)
        if symbol not in self._catalog:
            self._catalog[symbol] = self._catalog_row(symbol)
        return self._catalog[symbol]

    def market(self, symbol: str) -> MarketInfo:
        """One catalog row (not ``load_markets``, which reads every market of the exchange)."""
        info = self._market_info(symbol)
        if info is None or (info.type == "spot") == self.futures:
            raise InvalidOrder(f"Unknown market {symbol!r} on {self.name}.", fields={"symbol": "unknown"})
        return info

    def _catalog_row(self, symbol: str) -> MarketInfo | None:
        from apps.marketdata.models import Market

        row = Market.objects.filter(exchange__slug=self.account.exchange, symbol=symbol).first()
        if row is None:
            return None
        return MarketInfo(
            symbol=row.symbol,
            base=row.base,
            quote=row.quote,
            type=row.type,
            amount_step=row.precision_amount,
            price_step=row.precision_price,
            min_amount=row.min_amount,
            min_cost=row.min_notional,
        )

    @property
    def futures(self) -> bool:
        return self.account.market_type == FUTURES

    def _tiers(self, symbol: str) -> LeverageTiers:
        # The engine's tiers: shipped Binance USD-M brackets for BTC and ETH, else one flat bracket.
        if symbol not in self._tiers_cache:
            self._tiers_cache[symbol] = resolve_tiers(None, symbol, DEFAULT_MMR)
        return self._tiers_cache[symbol]

    def _position(self, symbol: str, quote: str) -> PaperPosition:
        position = self._positions.get(symbol)
        if position is None:
            position, _ = PaperPosition.objects.get_or_create(
                account=self.account, symbol=symbol, defaults={"quote": quote}
            )
            self._positions[symbol] = position
        return position

    def _loaded(self, order: PaperOrder) -> PaperOrder:
        """The in-memory copy of ``order`` a matching pass holds, so that no stale copy is saved later."""
        return self._registry.setdefault(order.pk, order)

    def _forget(self) -> None:
        # Every locked call starts from the database: rows change between transactions.
        self._registry.clear()
        self._positions.clear()
        self._spot_side.clear()
        self._volumes.clear()

    def _last_volume(self, symbol: str) -> float | None:
        """The last closed candle's volume, read once per locked call (it sizes and slips fills)."""
        if symbol not in self._volumes:
            self._volumes[symbol] = self.prices.last_volume(symbol)
        return self._volumes[symbol]

    # ------------------------------------------------------------------ orders
    def _validated(self, request: OrderRequest) -> dict[str, Any]:
        """The request's fields, checked (every bad field at once) and rounded to the market."""
        base, quote = split_symbol(request.symbol, futures=self.futures)
        side, kind = request.side, request.type
        errors: dict[str, str] = {}
        if side not in SIDE_SIGN:
            errors["side"] = "must be buy or sell"
        if kind not in SIMULATED_TYPES:
            errors["type"] = "the paper exchange simulates " + ", ".join(SIMULATED_TYPES)
        if request.time_in_force != TimeInForce.GTC:
            errors["time_in_force"] = "the paper exchange simulates GTC orders only"
        if request.reduce_only and not self.futures:
            errors["reduce_only"] = "spot orders cannot be reduce-only"
        amount = to_decimal(request.amount)
        price = to_decimal(request.price)
        stop_price = to_decimal(request.stop_price)
        trail = to_decimal(request.trailing_percent)
        if kind == OrderType.TAKE_PROFIT and price is None:
            price = stop_price  # the orders service and ccxt carry a take-profit's trigger as stop_price
        if amount is None or amount <= 0:
            errors["amount"] = "must be positive"
        if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT) and (
            price is None or price <= 0
        ):
            errors["price"] = f"a positive price is required for {kind} orders"
        if kind in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) and (stop_price is None or stop_price <= 0):
            errors["stop_price"] = f"a positive stop_price is required for {kind} orders"
        if kind == OrderType.TRAILING_STOP and (trail is None or not 0 < trail < 100):
            errors["trailing_percent"] = "a trailing stop needs trailing_percent between 0 and 100"
        if errors:
            raise InvalidOrder(next(f"{k}: {v}" for k, v in errors.items()), fields=errors)
        amount, price, stop_price = self._round_and_check(request.symbol, amount, price, stop_price, kind)
        return {
            "symbol": request.symbol,
            "base": base,
            "quote": quote,
            "side": side,
            "type": kind,
            "amount": amount,
            "price": price
            if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT)
            else None,
            "stop_price": stop_price if kind in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) else None,
            "trailing_percent": trail if kind == OrderType.TRAILING_STOP else None,
            "reduce_only": bool(request.reduce_only),
            "client_order_id": request.client_order_id,
        }

    def _new_order(self, fields: dict[str, Any], current: Decimal, now: int) -> PaperOrder:
        fields = dict(fields)
        client_order_id = fields.pop("client_order_id") or f"paper-{uuid.uuid4().hex[:24]}"
        order = PaperOrder(
            account=self.account,
            client_order_id=client_order_id,
            rests_from=now,
            checked_until=now,
            fee_asset=fields["quote"],
            **fields,
        )
        if order.type == OrderType.TRAILING_STOP:
            # The engine starts a trailing stop's peak (trough) at the price when it is placed.
            order.extreme = current
        return order

    def _reference_price(self, order: PaperOrder, current: Decimal) -> Decimal:
        """The price an order's reservation is sized at."""
        if order.type == OrderType.MARKET:
            volume = self._last_volume(order.symbol)
            return dec(
                self._slippage().apply(
                    float(current), SIDE_SIGN[order.side], float(order.amount), volume or 0.0
                )
            )
        if order.type == OrderType.STOP_MARKET:
            return order.stop_price
        if order.type == OrderType.TRAILING_STOP:
            trail = order.trailing_percent / 100
            return current * (1 + trail) if order.side == OrderSide.BUY else current
        return order.price

    def create_order(self, request: OrderRequest) -> Order:
        fields = self._validated(request)
        with transaction.atomic():
            self._lock()
            self._forget()
            if request.client_order_id:
                existing = self.account.orders.filter(client_order_id=request.client_order_id).first()
                if existing is not None:
                    return self._to_order(existing)  # idempotent retry: never a second order
            self._process(symbol=request.symbol)
            current = self.prices.price(request.symbol)
            now = self.prices.now_ms(request.symbol)
            order = self._new_order(fields, current, now)
            position = self._futures_position(order.symbol)
            if position is not None and position.size:
                # As the engine: funding due at this price's time is settled before an order fills.
                spec = self._funding_spec(order.symbol, position.funded_until, now)
                self._charge_funding(position, Bar(now, *(float(current),) * 4, 0.0), spec)
            self._check_position_limit(order, self._reference_price(order, current))
            self._reserve(order, self._reference_price(order, current))  # raises before anything is stored
            order.save()
            if order.type == OrderType.MARKET:
                self._fill_market_now(order, current)
            return self._to_order(order)

    supports_oco = True

    def create_oco(self, first: OrderRequest, second: OrderRequest) -> list[Order]:
        """Two resting orders on one symbol, side and amount; a fill of either cancels the other.

        The pair holds one reservation (as Binance's OCO does): the larger of the
        two orders' needs, kept on the first order and handed to whichever fills.
        """
        a, b = self._validated(first), self._validated(second)
        errors: dict[str, str] = {}
        if OrderType.MARKET in (a["type"], b["type"]):
            errors["type"] = "both orders of an OCO pair must rest (no market orders)"
        if a["symbol"] != b["symbol"]:
            errors["symbol"] = "both orders of an OCO pair trade one symbol"
        if a["side"] != b["side"]:
            errors["side"] = "both orders of an OCO pair have the same side"
        if a["amount"] != b["amount"]:
            errors["amount"] = "both orders of an OCO pair have the same amount"
        if errors:
            raise InvalidOrder(next(f"{k}: {v}" for k, v in errors.items()), fields=errors)
        with transaction.atomic():
            self._lock()
            self._forget()
            ids = [f["client_order_id"] for f in (a, b) if f["client_order_id"]]
            existing = list(self.account.orders.filter(client_order_id__in=ids).order_by("pk")) if ids else []
            if existing:
                return [self._to_order(o) for o in existing]  # a retried pair: never placed twice
            self._process(symbol=a["symbol"])
            current = self.prices.price(a["symbol"])
            now = self.prices.now_ms(a["symbol"])
            group = f"oco-{uuid.uuid4().hex[:24]}"
            orders = [self._new_order(f, current, now) for f in (a, b)]
            refs = [self._reference_price(o, current) for o in orders]
            for order, ref in zip(orders, refs, strict=True):
                order.oco_group = group
                self._check_position_limit(order, ref)
            self._reserve(orders[0], max(refs))
            for order in orders:
                order.save()
            return [self._to_order(o) for o in orders]

    def _round_and_check(
        self, symbol: str, amount: Decimal, price: Decimal | None, stop_price: Decimal | None, kind: str
    ) -> tuple[Decimal, Decimal | None, Decimal | None]:
        info = self._market_info(symbol)
        if info is None:
            return amount, price, stop_price
        if info.amount_step:
            amount = (amount / info.amount_step).to_integral_value(ROUND_DOWN) * info.amount_step
        if info.price_step:
            price = None if price is None else (price / info.price_step).to_integral_value() * info.price_step
            stop_price = (
                None
                if stop_price is None
                else (stop_price / info.price_step).to_integral_value() * info.price_step
            )
        if amount <= 0 or (info.min_amount and amount < info.min_amount):
            raise InvalidOrder(
                f"Amount is below the market minimum of {info.min_amount} {info.base}.",
                fields={"amount": f"minimum {info.min_amount}"},
            )
        if info.min_cost:
            ref = price or stop_price or self.prices.price(symbol)
            if amount * ref < info.min_cost:
                raise InvalidOrder(
                    f"Order value is below the market minimum of {info.min_cost} {info.quote}.",
                    fields={"amount": f"minimum notional {info.min_cost}"},
                )
        return amount, price, stop_price

    def _check_position_limit(self, order: PaperOrder, ref_price: Decimal) -> None:
        """Futures: the position an order could open may not exceed what its leverage allows (tiers)."""
        if not self.futures or order.reduce_only:
            return
        position = self._position(order.symbol, order.quote)
        closing = self._closable(position, order)
        if order.amount <= closing:
            return  # it only reduces the position
        leverage = float(position.leverage)
        limit = self._tiers(order.symbol).max_notional(leverage)
        # The position after the fill: larger in the same direction, or reversed past zero.
        after = abs(position.size) + order.amount if not closing else order.amount - closing
        notional = float(after * ref_price)
        if notional > limit:
            raise InvalidOrder(
                f"A position of {notional:,.2f} {order.quote} exceeds the {limit:,.0f} {order.quote} "
                f"the market allows at {leverage:g}x leverage; lower the leverage or the amount.",
                fields={"amount": "exceeds the maximum position at this leverage"},
            )

    def _reserve(self, order: PaperOrder, ref_price: Decimal) -> None:
        """Hold what the order may spend: quote (with the higher fee) for buys and futures margin, base for spot sells."""
        maker, taker = self._fees
        if self.futures:
            asset = order.quote
            if order.reduce_only:
                need = ZERO  # closes only: frees margin, never takes any
            else:
                position = self._position(order.symbol, order.quote)
                closing = self._closable(position, order)
                opening = max(order.amount - closing, ZERO)
                need = q(
                    opening * ref_price / position.leverage + order.amount * ref_price * max(maker, taker),
                    ROUND_UP,
                )
                if closing:
                    # One-way mode: the part that closes the opposite position frees its margin and
                    # realizes its P&L first, which pays for the part that opens (a reversal).
                    freed = q(position.margin * closing / abs(position.size), ROUND_DOWN)
                    pnl = q(position.side * closing * (ref_price - position.entry_price))
                    need = max(need - freed - pnl, ZERO)
        elif order.side == OrderSide.BUY:
            asset = order.quote
            need = q(order.amount * ref_price * (1 + max(maker, taker)), ROUND_UP)
        else:
            asset = order.base
            need = order.amount
        balance = self._balance(asset)
        if balance.free < need:
            raise InsufficientFunds(
                f"Insufficient {asset}: this order needs {need.normalize():f}, "
                f"{balance.free.normalize():f} is available.",
                fields={"amount": "insufficient balance"},
            )
        balance.free -= need
        balance.used += need
        balance.save(update_fields=["free", "used"])
        order.reserved = need

    @staticmethod
    def _closable(position: PaperPosition, order: PaperOrder) -> Decimal:
        """How much of ``order`` closes the opposite futures position (one-way mode)."""
        if not position.size or (position.size > 0) == (order.side == OrderSide.BUY):
            return ZERO
        return min(order.amount, abs(position.size))

    def _reserved_asset(self, order: PaperOrder) -> str:
        return order.quote if self.futures or order.side == OrderSide.BUY else order.base

    def _release(self, order: PaperOrder) -> None:
        if order.reserved <= 0:
            return
        balance = self._balance(self._reserved_asset(order))
        balance.used -= order.reserved
        balance.free += order.reserved
        balance.save(update_fields=["free", "used"])
        order.reserved = ZERO

    def _fill_market_now(self, order: PaperOrder, current: Decimal) -> None:
        volume = self._last_volume(order.symbol)
        qty = order.amount
        if volume is not None:  # no candle yet: nothing to size a partial fill against
            qty = min(qty, q(dec(fills.partial_fill_size(float(qty), volume, self._mvf()))))
        price = dec(self._slippage().apply(float(current), SIDE_SIGN[order.side], float(qty), volume or 0.0))
        # An unfilled remainder trades from the next candle on, never again in this one.
        now = self.prices.now_ms(order.symbol)
        order.rests_from = order.checked_until = now + 1
        self._apply_fill(order, qty, price, maker=False, timestamp=now)

    def _apply_fill(
        self, order: PaperOrder, qty: Decimal, price: Decimal, *, maker: bool, timestamp: int
    ) -> bool:
        """Move balances (and the futures position) for a fill; returns False (and rejects) if unaffordable."""
        if qty <= 0:
            return False
        if order.oco_group:
            self._cancel_oco_siblings(order, reason="OCO: the other order filled")
        maker_fee, taker_fee = self._fees
        rate = maker_fee if maker else taker_fee
        remaining = order.remaining
        release = order.reserved if qty >= remaining else q(order.reserved * qty / remaining, ROUND_DOWN)
        if self.futures:
            settled = self._settle_futures(order, qty, price, rate, release, timestamp)
            if settled is None:
                return False
            qty, cost, fee, pnl = settled
        else:
            cost = q(qty * price)
            fee = q(cost * rate)
            pnl = ZERO
            if not self._settle_spot(order, qty, cost, fee, release):
                return False
        order.reserved -= release
        order.filled += qty
        order.cost += cost
        order.fee += fee
        PaperTrade.objects.create(
            order=order,
            account=self.account,
            symbol=order.symbol,
            side=order.side,
            price=price,
            amount=qty,
            cost=cost,
            fee=fee,
            fee_asset=order.quote,
            maker=maker,
            timestamp=timestamp,
            realized_pnl=pnl,
        )
        if order.filled >= order.amount:
            self._finish(order, OrderStatus.FILLED)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
            order.save()
        self._publish_fill(order, price, qty, fee, timestamp)
        self._spot_side.clear()  # holdings of a base asset changed
        if self.futures:
            self._after_position_change(order.symbol)
        return True

    def _publish_fill(
        self, order: PaperOrder, price: Decimal, qty: Decimal, fee: Decimal, timestamp: int
    ) -> None:
        # Bots and the dashboard react to fills live; sent only if the fill commits.
        publish_event(
            self.account.user_id,
            "paper.fill",
            {
                "account_id": self.account.pk,
                "bot_id": self.account.bot_id,
                "order_id": str(order.pk),
                "client_order_id": order.client_order_id,
                "symbol": order.symbol,
                "side": order.side,
                "price": str(price),
                "amount": str(qty),
                "fee": str(fee),
                "status": order.status,
                "timestamp": timestamp,
            },
            on_commit=True,
        )

    def _settle_spot(
        self, order: PaperOrder, qty: Decimal, cost: Decimal, fee: Decimal, release: Decimal
    ) -> bool:
        if order.side == OrderSide.BUY:
            quote = self._balance(order.quote)
            need = cost + fee
            if need > release + quote.free:
                self._finish(order, OrderStatus.REJECTED, "insufficient funds at fill time")
                return False
            quote.used -= release
            quote.free += release - need
            quote.save(update_fields=["free", "used"])
            base = self._balance(order.base)
            base.free += qty
            base.save(update_fields=["free"])
        else:
            base = self._balance(order.base)
            base.used -= release
            base.free += release - qty
            base.save(update_fields=["free", "used"])
            quote = self._balance(order.quote)
            quote.free += cost - fee
            quote.save(update_fields=["free"])
        return True

    def _settle_futures(
        self, order: PaperOrder, qty: Decimal, price: Decimal, rate: Decimal, release: Decimal, timestamp: int
    ) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
        """Reduce (realizing P&L, freeing margin) then open or add (holding margin), as the engine's ``_execute``.

        Returns ``(qty, cost, fee, realized P&L)`` or None when the order was rejected or cancelled.
        """
        position = self._position(order.symbol, order.quote)
        side = SIDE_SIGN[order.side]
        size = position.size
        closing = min(qty, abs(size)) if size and (size > 0) != (side > 0) else ZERO
        if order.reduce_only:
            if not closing:
                self._finish(order, OrderStatus.CANCELLED, "reduce-only: no position to reduce")
                return None
            qty = closing
        opening = qty - closing
        cost = q(qty * price)
        fee = q(cost * rate)
        quote = self._balance(order.quote)
        pnl = margin_freed = ZERO
        if closing:
            pnl = q(position.side * closing * (price - position.entry_price))
            margin_freed = (
                position.margin
                if closing == abs(size)
                else q(position.margin * closing / abs(size), ROUND_DOWN)
            )
        margin_added = ZERO
        if opening:
            leverage = position.leverage
            notional = float((abs(size) - closing + opening) * price)
            if notional > self._tiers(order.symbol).max_notional(float(leverage)):
                self._finish(order, OrderStatus.REJECTED, "exceeds the maximum position at this leverage")
                return None
            margin_added = q(opening * price / leverage)
            if margin_added + fee > quote.free + release + margin_freed + pnl:
                self._finish(order, OrderStatus.REJECTED, "insufficient margin at fill time")
                return None
        # Wallet (free + used) changes by P&L minus fee; margin moves between free and used.
        quote.used += margin_added - margin_freed - release
        quote.free = max(quote.free + release + margin_freed + pnl - fee - margin_added, ZERO)
        quote.save(update_fields=["free", "used"])
        if closing:
            position.margin -= margin_freed
            position.realized_pnl += pnl
            position.size += side * closing
            if not position.size:
                position.entry_price = None
                position.margin = ZERO
        if opening:
            old = abs(position.size)
            new = old + opening
            if not old:
                # Funding due at or before the opening is not this position's (the engine charges
                # funding at a candle's open, before that candle's fills).
                position.funded_until = timestamp
                position.checked_until = timestamp
            position.entry_price = q(((position.entry_price or ZERO) * old + price * opening) / new)
            position.size = side * new
            position.margin += margin_added
        position.save()
        return qty, cost, fee, pnl

    def _after_position_change(self, symbol: str) -> None:
        """Cancel reduce-only orders that no longer reduce anything (as the engine does)."""
        position = self._position(symbol, "")
        for order in self.account.orders.open().filter(symbol=symbol, reduce_only=True).order_by("pk"):
            order = self._loaded(order)
            if order.status not in OPEN_STATUSES:
                continue
            if not position.size or (position.size > 0) == (order.side == OrderSide.BUY):
                self._finish(order, OrderStatus.CANCELLED, "reduce-only: no position left to reduce")

    def _cancel_oco_siblings(self, order: PaperOrder, *, reason: str) -> None:
        """Cancel the other order of ``order``'s OCO pair; ``order`` takes over the pair's reservation."""
        siblings = self.account.orders.open().filter(oco_group=order.oco_group).exclude(pk=order.pk)
        for sibling in siblings.order_by("pk"):
            sibling = self._loaded(sibling)
            if sibling.status not in OPEN_STATUSES:
                continue
            order.reserved += sibling.reserved
            sibling.reserved = ZERO
            self._finish(sibling, OrderStatus.CANCELLED, reason)

    def _finish(self, order: PaperOrder, status: str, reason: str = "") -> None:
        self._release(order)
        order.status = status
        order.reason = reason
        order.save()

    # ---------------------------------------------------------------- futures
    def _collateral(self, position: PaperPosition) -> Decimal:
        """What a liquidation takes: the isolated margin, or (cross) the free balance and the margin."""
        if position.margin_mode == CROSS:
            return self._balance(position.quote).free + position.margin
        return position.margin

    def _liquidation_price(self, position: PaperPosition) -> float | None:
        if not position.size:
            return None
        return self._tiers(position.symbol).liquidation_price(
            position.side,
            float(position.entry_price),
            float(abs(position.size)),
            float(self._collateral(position)),
        )

    def _liquidate(self, position: PaperPosition, timestamp: int, gap_point: float | None) -> None:
        """The exchange takes the position over at the bankruptcy price: its whole margin is lost.

        As the engine's ``SimulatedBroker._liquidate``: no fee (the maintenance margin
        left goes to the insurance fund); on a gap beyond the bankruptcy price the fill
        is recorded at the gapped price, the loss stays the margin.
        """
        side = position.side
        qty = abs(position.size)
        collateral = self._collateral(position)
        bankrupt = LeverageTiers.bankruptcy_price(
            side, float(position.entry_price), float(qty), float(collateral)
        )
        exit_price = bankrupt
        if gap_point is not None and (gap_point - bankrupt) * side < 0:
            exit_price = gap_point
        price = dec(exit_price)
        base, quote_asset = split_symbol(position.symbol, futures=True)
        order = PaperOrder.objects.create(
            account=self.account,
            client_order_id=f"liquidation-{uuid.uuid4().hex[:24]}",
            symbol=position.symbol,
            base=base,
            quote=quote_asset,
            side=OrderSide.SELL if side > 0 else OrderSide.BUY,
            type=OrderType.MARKET,
            amount=qty,
            filled=qty,
            cost=q(qty * price),
            status=OrderStatus.FILLED,
            reason="liquidation",
            reduce_only=True,
            rests_from=timestamp,
            checked_until=timestamp,
            fee_asset=quote_asset,
        )
        quote = self._balance(position.quote)
        quote.used -= position.margin
        if position.margin_mode == CROSS:
            quote.free = ZERO
        quote.save(update_fields=["free", "used"])
        PaperTrade.objects.create(
            order=order,
            account=self.account,
            symbol=position.symbol,
            side=order.side,
            price=price,
            amount=qty,
            cost=order.cost,
            fee=ZERO,
            fee_asset=quote_asset,
            maker=False,
            timestamp=timestamp,
            realized_pnl=-collateral,
            liquidation=True,
        )
        position.realized_pnl -= collateral
        position.size = ZERO
        position.entry_price = None
        position.margin = ZERO
        position.save()
        self._publish_fill(order, price, qty, ZERO, timestamp)
        self._after_position_change(position.symbol)

    def _funding_spec(self, symbol: str, start_ms: int, end_ms: int) -> Any:
        """The engine's funding spec: the account's constant rate, else the stored history."""
        if self.account.funding_rate is not None:
            return normalize_funding(float(self.account.funding_rate))
        source = getattr(self.prices, "funding_rates", None)
        history = source(symbol, start_ms, end_ms) if source is not None else None
        return normalize_funding(history) if history else None

    def _charge_funding(self, position: PaperPosition, bar: Bar, spec: Any) -> None:
        """Funding due since the last settlement, charged at this candle's open (``engine.margin``)."""
        if spec is None or bar.timestamp <= position.funded_until:
            return
        # The engine maps each funding time onto the first candle opening at or after it;
        # index 0 stands for what is already settled.
        indices, rates = funding_schedule(
            spec, np.array([position.funded_until, bar.timestamp], dtype=np.int64)
        )
        rate = sum(r for i, r in zip(indices, rates, strict=True) if i == 1)
        position.funded_until = bar.timestamp
        if not rate:
            position.save(update_fields=["funded_until", "updated_at"])
            return
        payment = q(position.size * dec(bar.open) * dec(rate))  # positive: the long pays
        quote = self._balance(position.quote)
        if position.margin_mode == CROSS:
            # Out of the wallet, as the engine's cross rule: the free balance first, then the
            # position's margin (the wallet, free plus used, always drops by the payment).
            taken = min(payment, quote.free) if payment > 0 else payment
            quote.free -= taken
            cut = min(payment - taken, position.margin)
            position.margin -= cut
            quote.used -= cut
        else:
            margin = max(position.margin - payment, ZERO)
            quote.used += margin - position.margin
            position.margin = margin
        quote.save(update_fields=["free", "used"])
        position.funding += payment
        position.save()

    def set_leverage(self, symbol: str, leverage: Decimal) -> Decimal:
        """Set the symbol's leverage, at most the market's first-bracket maximum; refused while a position is open."""
        if not self.futures:
            return super().set_leverage(symbol, leverage)
        _, quote = split_symbol(symbol, futures=True)
        value = to_decimal(leverage)
        cap = self._tiers(symbol).max_leverage[0]
        if value is None or not 1 <= value <= Decimal(repr(cap)):
            raise InvalidOrder(
                f"Leverage must be between 1 and {cap:g} on {symbol}.", fields={"leverage": f"1 to {cap:g}"}
            )
        with transaction.atomic():
            self._lock()
            self._forget()
            position = self._position(symbol, quote)
            if position.size:
                raise InvalidOrder(
                    "Close the position before changing its leverage.", fields={"leverage": "position open"}
                )
            position.leverage = value
            position.save(update_fields=["leverage", "updated_at"])
            return value

    def set_margin_mode(self, symbol: str, mode: str) -> str:
        """Isolated or cross margin for the symbol; refused while a position is open (as Binance does)."""
        if not self.futures:
            return super().set_margin_mode(symbol, mode)
        _, quote = split_symbol(symbol, futures=True)
        if mode not in PaperPosition.MarginMode.values:
            raise InvalidOrder(
                "Margin mode must be isolated or cross.", fields={"margin_mode": "isolated or cross"}
            )
        with transaction.atomic():
            self._lock()
            self._forget()
            position = self._position(symbol, quote)
            if position.size:
                raise InvalidOrder(
                    "Close the position before changing its margin mode.",
                    fields={"margin_mode": "position open"},
                )
            position.margin_mode = mode
            position.save(update_fields=["margin_mode", "updated_at"])
            return mode

    def fetch_positions(self, symbols: list[str] | None = None) -> list[Position]:
        if not self.futures:
            return []
        if self.match_on_read:
            self.match()
        rows = self.account.positions.exclude(size=0).order_by("symbol")
        if symbols:
            rows = rows.filter(symbol__in=symbols)
        out = []
        for position in rows:
            mark = self.prices.price(position.symbol)
            liq = self._liquidation_price(position)
            out.append(
                Position(
                    symbol=position.symbol,
                    side="long" if position.size > 0 else "short",
                    contracts=abs(position.size),
                    entry_price=position.entry_price,
                    mark_price=mark,
                    unrealized_pnl=q(position.size * (mark - position.entry_price)),
                    leverage=position.leverage,
                    liquidation_price=None if liq is None else dec(liq),
                    margin_mode=position.margin_mode,
                )
            )
        return out

    # --------------------------------------------------------------- matching
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
        symbols = set(self.account.orders.open().values_list("symbol", flat=True))
        if self.futures:
            symbols |= set(self.account.positions.exclude(size=0).values_list("symbol", flat=True))
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

    def _futures_position(self, symbol: str) -> PaperPosition | None:
        if not self.futures:
            return None
        return self._position(symbol, split_symbol(symbol, futures=True)[1])

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

    # ------------------------------------------------------------------ reads
    def _get(self, order_id: str, symbol: str | None = None) -> PaperOrder:
        order = self._get_row(order_id, symbol)
        return self._loaded(order)

    def _get_row(self, order_id: str, symbol: str | None = None) -> PaperOrder:
        order = None
        if str(order_id).isdigit():
            order = self.account.orders.filter(pk=int(order_id)).first()
        if order is None:
            order = self.account.orders.filter(client_order_id=str(order_id)).first()
        if order is None or (symbol and order.symbol != symbol):
            raise OrderNotFound(f"Order {order_id} does not exist on this paper account.")
        return order

    def cancel_order(self, order_id: str, symbol: str) -> Order:
        with transaction.atomic():
            self._lock()
            self._forget()
            self._process(symbol=symbol)
            order = self._get(order_id, symbol)
            if order.status not in OPEN_STATUSES:
                # Like Binance ("Unknown order sent"): a filled or cancelled order cannot be cancelled.
                raise OrderNotFound(
                    f"Order {order_id} is {order.get_status_display().lower()}; nothing to cancel."
                )
            if order.oco_group:  # cancelling one order of an OCO pair cancels the pair, as on Binance
                self._cancel_oco_siblings(order, reason="OCO: the other order was cancelled")
            self._finish(order, OrderStatus.CANCELLED, "cancelled by user")
            return self._to_order(order)

    def cancel_all(self, symbol: str | None = None) -> int:
        with transaction.atomic():
            self._lock()
            self._forget()
            self._process(symbol=symbol)
            orders = self.account.orders.open()
            if symbol:
                orders = orders.filter(symbol=symbol)
            count = 0
            for order in orders.order_by("pk"):
                order = self._loaded(order)
                if order.status not in OPEN_STATUSES:
                    continue
                self._finish(order, OrderStatus.CANCELLED, "cancelled by user")
                count += 1
            return count

    def fetch_order(self, order_id: str, symbol: str) -> Order:
        self.match(symbol)
        return self._to_order(self._get(order_id, symbol))

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        self.match(symbol)
        orders = self.account.orders.open().order_by("created_at", "id")
        if symbol:
            orders = orders.filter(symbol=symbol)
        return [self._to_order(o) for o in orders]

    def fetch_my_trades(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[Trade]:
        self.match(symbol)
        trades = self.account.trades.all().order_by("timestamp", "id")
        if symbol:
            trades = trades.filter(symbol=symbol)
        if since is not None:
            trades = trades.filter(timestamp__gte=since)
        if limit:
            trades = trades[:limit]
        return [self._to_trade(t) for t in trades]

    def fetch_order_trades(self, order_id: str, symbol: str) -> list[Trade]:
        """The fills of one order, as they stand (no matching pass: the caller just had one)."""
        trades = self.account.trades.filter(order_id=int(order_id), symbol=symbol).order_by("timestamp", "id")
        return [self._to_trade(t) for t in trades]

    @staticmethod
    def _to_trade(t: PaperTrade) -> Trade:
        return Trade(
            id=str(t.pk),
            order_id=str(t.order_id),
            symbol=t.symbol,
            side=t.side,
            price=t.price,
            amount=t.amount,
            cost=t.cost,
            fee=t.fee,
            fee_asset=t.fee_asset,
            maker=t.maker,
            timestamp=t.timestamp,
        )

    def fetch_balance(self) -> AccountBalance:
        if self.match_on_read:
            self.match()
        rows = PaperBalance.objects.filter(account=self.account).order_by("asset")
        return AccountBalance(
            balances={b.asset: Balance(b.asset, b.free, b.used, b.total) for b in rows},
            timestamp=self.prices.now_ms(),
        )

    def load_markets(self, *, reload: bool = False) -> dict[str, MarketInfo]:
        if self._markets is not None:
            return self._markets
        from apps.marketdata.models import Market

        markets = {}
        rows = Market.objects.filter(exchange__slug=self.account.exchange)
        rows = rows.exclude(type="spot") if self.futures else rows.filter(type="spot")
        for symbol in rows.values_list("symbol", flat=True):
            info = self._market_info(symbol)
            if info is not None:
                markets[symbol] = info
        return markets

    def fetch_ticker(self, symbol: str) -> Ticker:
        split_symbol(symbol, futures=self.futures)
        price = self.prices.price(symbol)
        return Ticker(symbol=symbol, last=price, bid=price, ask=price, timestamp=self.prices.now_ms(symbol))

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> OrderBook:
        # The simulation has no depth: one level at the current price, sized by the last candle.
        price = self.prices.price(symbol)
        size = dec(self.prices.last_volume(symbol) or 0.0)
        return OrderBook(
            symbol=symbol, bids=[(price, size)], asks=[(price, size)], timestamp=self.prices.now_ms(symbol)
        )

    def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[OHLCV]:
        bars = self.prices.candles_since(symbol, since or 0)
        if limit:
            bars = bars[-limit:]
        return [
            OHLCV(b.timestamp, dec(b.open), dec(b.high), dec(b.low), dec(b.close), dec(b.volume))
            for b in bars
        ]

    def check_connection(self) -> ConnectionCheck:
        return ConnectionCheck(
            ok=True,
            spot=not self.futures,
            futures=self.futures,
            message="Paper account: simulated, always available.",
        )

    # ---------------------------------------------------------------- account
    def _to_order(self, order: PaperOrder) -> Order:
        return Order(
            id=str(order.pk),
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            status=order.status,
            amount=order.amount,
            filled=order.filled,
            remaining=order.remaining,
            price=order.price,
            stop_price=order.stop_price,
            average=None if not order.filled else q(order.cost / order.filled),
            cost=order.cost,
            fee=order.fee,
            fee_asset=order.fee_asset or order.quote,
            timestamp=order.rests_from,
            reason=order.reason,
            time_in_force=TimeInForce.GTC,
        )


#: Account settings a reset may change (they need a clean account: no orders, no positions).
RESET_SETTINGS = ("market_type", "funding_rate")


@transaction.atomic
def paper_account_reset(
    *,
    account: PaperAccount,
    balances: dict[str, Decimal] | None = None,
    settings: dict[str, Any] | None = None,
) -> PaperAccount:
    """Cancel everything and restore the initial balances (or set new ones, which become the initial).

    ``settings`` may switch the account between spot and futures (``market_type``)
    and set its constant ``funding_rate`` (None: the stored funding history).
    """
    account = PaperAccount.objects.select_for_update().get(pk=account.pk)
    for name, value in (settings or {}).items():
        if name not in RESET_SETTINGS:
            raise ValueError(f"{name} is not a paper account setting")
        setattr(account, name, value)
    if balances is not None:
        account.initial_balances = {asset.upper(): str(amount) for asset, amount in balances.items()}
    account.orders.all().delete()  # trades cascade
    account.positions.all().delete()
    account.balances.all().delete()
    PaperBalance.objects.bulk_create(
        PaperBalance(account=account, asset=asset, free=Decimal(amount))
        for asset, amount in sorted(account.initial_balances.items())
    )
    account.reset_at = timezone.now()
    account.save(update_fields=["initial_balances", "reset_at", *(settings or {})])
    return account
