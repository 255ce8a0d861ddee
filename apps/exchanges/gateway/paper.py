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

This module holds ``PaperGateway`` (orders, reservations, spot settlement,
reads) and ``paper_account_reset``; the gateway's parts are mixins in sibling
modules: ``paper_futures.PaperFutures`` (the USD-M futures bookkeeping) and
``paper_matching.PaperMatching`` (candle and price matching), with what they
share in ``paper_common``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.backtests.engine import fills
from apps.backtests.engine.slippage import SlippageModel
from apps.backtests.engine.tiers import LeverageTiers
from apps.core.api import response_cache
from apps.core.compiled import compiled
from apps.core.events import publish_event
from apps.core.money import ZERO, as_stored, shown_need
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
    Ticker,
    Trade,
    to_decimal,
)
from apps.exchanges.gateway.errors import InsufficientFunds, InvalidOrder, OrderNotFound
from apps.exchanges.gateway.paper_common import SIDE_SIGN, dec, q, split_symbol
from apps.exchanges.gateway.paper_futures import DEFAULT_MMR, PaperFutures
from apps.exchanges.gateway.paper_matching import PaperMatching
from apps.exchanges.gateway.prices import Bar, MarketDataPriceSource, PriceSource
from apps.exchanges.models import PaperAccount, PaperBalance, PaperOrder, PaperPosition, PaperTrade
from apps.orders.enums import OPEN_STATUSES, OrderSide, OrderStatus, OrderType, TimeInForce

# Imported from here by the bots (their paper accounts, replays and futures checks).
__all__ = ["DEFAULT_MMR", "DEFAULT_SLIPPAGE", "PaperGateway", "paper_account_reset", "split_symbol"]

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


#: Catalog rows kept per process (``PaperGateway._catalog_row``), at most; by (exchange, symbol),
#: with the version of the market and exchange tables they were read at: any write to either
#: (a market refresh, an admin's edit, from any process) makes the next order read the row again.
KEPT_MARKETS_MAX = 10_000
_kept_markets = response_cache.KeptPerProcess(KEPT_MARKETS_MAX)


# Asked by every order (apps/core/compiled.py): compiled once per process.
@compiled
def _locked_account(pk: int):
    return PaperAccount.objects.select_for_update().filter(pk=pk)


@compiled
def _locked_balances(account_id: int, assets: list[str]):
    return PaperBalance.objects.select_for_update().filter(account_id=account_id, asset__in=assets)


def _as_stored(trade: PaperTrade) -> bool:
    """Whether ``trade`` in memory holds what the database reads back: PostgreSQL keeps an amount
    exactly when it fits the column's places; SQLite keeps a float (``apps/core/money.py``)."""
    if connection.vendor == "sqlite":
        return False
    values = (trade.price, trade.amount, trade.cost, trade.fee, trade.realized_pnl)
    return all(value == as_stored(value) for value in values)


class PaperGateway(PaperFutures, PaperMatching, ExchangeGateway):
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
        self._balances: dict[str, PaperBalance] = {}  # locked (FOR UPDATE) until the transaction ends
        self._registry: dict[int, PaperOrder] = {}
        self._spot_side: dict[str, int] = {}
        self._volumes: dict[str, float | None] = {}
        # Trades of the orders this gateway filled whole as it placed them: a filled order trades
        # no more, so ``fetch_order_trades`` answers them without a query. ``_trades_made``: the
        # trades of the market order being placed, by ``id()`` of the order (not yet stored).
        self._trades_made: dict[int, list[PaperTrade]] = {}
        self._filled_at_once: dict[int, list[PaperTrade]] = {}

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
        found = _locked_account(self.account.pk)
        if not found:
            raise PaperAccount.DoesNotExist("PaperAccount matching query does not exist.")
        self.account = found[0]
        return self.account

    def _balance(self, asset: str) -> PaperBalance:
        # Read (and row-locked) once per locked call: a reservation and the fill that releases it
        # move one row, which no other transaction can change meanwhile.
        balance = self._balances.get(asset)
        if balance is None:
            balance, _ = PaperBalance.objects.select_for_update().get_or_create(
                account=self.account, asset=asset
            )
            self._balances[asset] = balance
        return balance

    def _lock_balances(self, assets: tuple[str, ...]) -> None:
        """``_balance`` of each of ``assets`` read in one query (those that exist; a missing row
        is still made by ``_balance`` when it is asked for)."""
        wanted = [asset for asset in assets if asset not in self._balances]
        if len(wanted) > 1:
            for balance in _locked_balances(self.account.pk, wanted):
                self._balances[balance.asset] = balance

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
        """The market's catalog row, kept per process while the catalog's tables are unchanged."""
        from apps.marketdata.models import Exchange, Market

        version = response_cache.table_version(Market._meta.db_table, Exchange._meta.db_table)
        key = (self.account.exchange, symbol)
        kept = _kept_markets.get(key, version)
        if kept is not _kept_markets.MISSING:
            return kept
        row = Market.objects.filter(exchange__slug=self.account.exchange, symbol=symbol).first()
        info = (
            None
            if row is None
            else MarketInfo(
                symbol=row.symbol,
                base=row.base,
                quote=row.quote,
                type=row.type,
                amount_step=row.precision_amount,
                price_step=row.precision_price,
                min_amount=row.min_amount,
                min_cost=row.min_notional,
            )
        )
        _kept_markets.keep(key, version, info)
        return info

    def _loaded(self, order: PaperOrder) -> PaperOrder:
        """The in-memory copy of ``order`` a matching pass holds, so that no stale copy is saved later."""
        return self._registry.setdefault(order.pk, order)

    def _forget(self) -> None:
        # Every locked call starts from the database: rows change between transactions.
        self._registry.clear()
        self._positions.clear()
        self._balances.clear()
        self._spot_side.clear()
        self._volumes.clear()
        self._filled_at_once.clear()

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
        in_caller_transaction = request.in_caller_transaction and connection.in_atomic_block
        with contextlib.nullcontext() if in_caller_transaction else transaction.atomic():
            self._lock()
            self._forget()
            if request.client_order_id and not request.new_client_id:
                existing = self.account.orders.filter(client_order_id=request.client_order_id).first()
                if existing is not None:
                    return self._to_order(existing)  # idempotent retry: never a second order
            if not self.futures:  # a spot order moves both of its assets
                self._lock_balances((fields["base"], fields["quote"]))
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
            # A spot market order settles at once: it is inserted with its fill and its reservation
            # written with the settlement (which saves the reserved asset's row): one INSERT of
            # the order and one UPDATE of the balance, not two of each. Both are written below
            # if nothing traded.
            at_once = order.type == OrderType.MARKET and not self.futures
            reserved = self._reserve(order, self._reference_price(order, current), save=not at_once)
            if not at_once:
                order.save()
            if order.type == OrderType.MARKET:
                made = self._trades_made[id(order)] = []
                try:
                    self._fill_market_now(order, current)
                finally:
                    del self._trades_made[id(order)]
                if order.pk is None:
                    order.save()
                if at_once and not made:
                    reserved.save(update_fields=["free", "used"])
                if order.status == OrderStatus.FILLED and all(_as_stored(t) for t in made):
                    self._filled_at_once[order.pk] = made
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

    def _reserve(self, order: PaperOrder, ref_price: Decimal, *, save: bool = True) -> PaperBalance:
        """Hold what the order may spend: quote (with the higher fee) for buys and futures margin, base for spot sells.

        The balance row it moved; with ``save=False`` the caller writes it.
        """
        maker, taker = self._fees
        if self.futures:
            asset = order.quote
            need = self._margin_need(order, ref_price, max(maker, taker))
        elif order.side == OrderSide.BUY:
            asset = order.quote
            need = q(order.amount * ref_price * (1 + max(maker, taker)), ROUND_UP)
        else:
            asset = order.base
            need = order.amount
        balance = self._balance(asset)
        if balance.free < need:
            raise InsufficientFunds(
                f"Insufficient {asset}: this order needs {shown_need(need)}, "
                f"{balance.free.normalize():f} is available.",
                fields={"amount": "insufficient balance"},
            )
        balance.free -= need
        balance.used += need
        if save:
            balance.save(update_fields=["free", "used"])
        order.reserved = need
        return balance

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
        # The order is written before its trade: a market order being placed is inserted here,
        # once, with its fill (``create_order``).
        if order.filled >= order.amount:
            self._finish(order, OrderStatus.FILLED)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
            order.save()
        trade = PaperTrade.objects.create(
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
        if id(order) in self._trades_made:
            self._trades_made[id(order)].append(trade)
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
        made = self._filled_at_once.get(int(order_id)) if str(order_id).isdigit() else None
        if made is not None:  # as read back: every amount to the column's places
            return [
                dataclasses.replace(
                    trade,
                    **{name: as_stored(getattr(trade, name)) for name in ("price", "amount", "cost", "fee")},
                )
                for trade in map(self._to_trade, made)
                if trade.symbol == symbol
            ]
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
