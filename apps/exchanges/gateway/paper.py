"""The paper exchange: a simulated spot account in the database, filled by the backtest's rules.

Every fill decision comes from ``apps.backtests.engine.fills`` (the same pure
functions the backtest broker uses), taker slippage from the engine's
``SlippageModel``; only the bookkeeping (Decimal balances in PostgreSQL) is
ours. Rules, as in the backtest:

* market orders fill at the source's current price (the open of the forming
  candle when replaying) moved by slippage, and pay the taker fee;
* limit, stop-market, stop-limit and take-profit orders rest from the first
  candle that opens after they were placed and fill when that candle's path
  crosses their level (``fills.evaluate_order``): limits at their price (or the
  better gapped open) paying maker; stops and take-profits at the level (or the
  gapped open) plus slippage, paying taker; a stop-limit whose limit is
  marketable at the trigger fills there as taker, otherwise it rests (maker);
* with ``max_volume_fraction`` a fill takes at most that share of the candle's
  volume (``fills.partial_fill_size``); the rest waits for the next candles.

Fees are charged in the quote asset, as the backtest does. Balances an order
may spend are reserved (``used``) while it is open, like an exchange's
"locked" balance. Each call locks the account row, so concurrent bots on one
account serialize instead of double-spending.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from django.db import transaction
from django.utils import timezone

from apps.backtests.engine import fills
from apps.backtests.engine.slippage import SlippageModel
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
    Ticker,
    Trade,
    to_decimal,
)
from apps.exchanges.gateway.errors import InsufficientFunds, InvalidOrder, OrderNotFound
from apps.exchanges.gateway.prices import Bar, MarketDataPriceSource, PriceSource
from apps.exchanges.models import PaperAccount, PaperBalance, PaperOrder, PaperTrade
from apps.orders.enums import OPEN_STATUSES, OrderSide, OrderStatus, OrderType, TimeInForce

DEFAULT_SLIPPAGE = {"type": "percentage", "value": 0.0005}
# What the simulation fills (the engine's fill rules); the other OrderTypes are refused.
SIMULATED_TYPES = (
    OrderType.MARKET,
    OrderType.LIMIT,
    OrderType.STOP_MARKET,
    OrderType.STOP_LIMIT,
    OrderType.TAKE_PROFIT,
)
SIDE_SIGN = {OrderSide.BUY: 1, OrderSide.SELL: -1}


q = quantize_amount


def dec(value: float) -> Decimal:
    """A float price from the fill rules -> Decimal via its shortest repr (no binary noise)."""
    return Decimal(repr(float(value)))


def split_symbol(symbol: str) -> tuple[str, str]:
    if ":" in symbol:
        raise InvalidOrder("The paper exchange simulates spot markets only.", fields={"symbol": "not spot"})
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote:
        raise InvalidOrder(f"Symbol {symbol!r} is not BASE/QUOTE.", fields={"symbol": "format BASE/QUOTE"})
    return base.upper(), quote.upper()


class PaperGateway(ExchangeGateway):
    """``ExchangeGateway`` over one ``PaperAccount``. ``prices`` defaults to the market-data service."""

    name = "paper"

    def __init__(
        self,
        account: PaperAccount,
        *,
        prices: PriceSource | None = None,
        markets: dict[str, MarketInfo] | None = None,
    ) -> None:
        self.account = account
        self.prices = prices or MarketDataPriceSource(exchange=account.exchange)
        self._markets = markets
        self._slip: SlippageModel | None = None

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

    # ------------------------------------------------------------------ orders
    def create_order(self, request: OrderRequest) -> Order:
        base, quote = split_symbol(request.symbol)
        side, kind = request.side, request.type
        errors: dict[str, str] = {}
        if side not in SIDE_SIGN:
            errors["side"] = "must be buy or sell"
        if kind not in SIMULATED_TYPES:
            errors["type"] = "the paper exchange simulates " + ", ".join(SIMULATED_TYPES)
        if request.time_in_force != TimeInForce.GTC:
            errors["time_in_force"] = "the paper exchange simulates GTC orders only"
        amount = to_decimal(request.amount)
        price = to_decimal(request.price)
        stop_price = to_decimal(request.stop_price)
        if amount is None or amount <= 0:
            errors["amount"] = "must be positive"
        if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT) and (
            price is None or price <= 0
        ):
            errors["price"] = f"a positive price is required for {kind} orders"
        if kind in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) and (stop_price is None or stop_price <= 0):
            errors["stop_price"] = f"a positive stop_price is required for {kind} orders"
        if errors:
            raise InvalidOrder(next(f"{k}: {v}" for k, v in errors.items()), fields=errors)
        amount, price, stop_price = self._round_and_check(request.symbol, amount, price, stop_price, kind)

        with transaction.atomic():
            self._lock()
            if request.client_order_id:
                existing = self.account.orders.filter(client_order_id=request.client_order_id).first()
                if existing is not None:
                    return self._to_order(existing)  # idempotent retry: never a second order
            self._process(symbol=request.symbol)
            current = self.prices.price(request.symbol)
            now = self.prices.now_ms(request.symbol)
            order = PaperOrder(
                account=self.account,
                client_order_id=request.client_order_id or f"paper-{uuid.uuid4().hex[:24]}",
                symbol=request.symbol,
                base=base,
                quote=quote,
                side=side,
                type=kind,
                amount=amount,
                price=price if kind != OrderType.MARKET else None,
                stop_price=stop_price if kind in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) else None,
                rests_from=now,
                checked_until=now,
                fee_asset=quote,
            )
            if kind == OrderType.MARKET:
                volume = self.prices.last_volume(request.symbol)
                ref = dec(
                    self._slippage().apply(float(current), SIDE_SIGN[side], float(amount), volume or 0.0)
                )
            elif kind == OrderType.STOP_MARKET:
                ref = stop_price
            else:
                ref = price
            self._reserve(order, ref)  # raises InsufficientFunds before anything is stored
            order.save()
            if kind == OrderType.MARKET:
                self._fill_market_now(order, current)
            return self._to_order(order)

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

    def _reserve(self, order: PaperOrder, ref_price: Decimal) -> None:
        """Hold what the order may spend: quote (with the higher fee) for buys, base for sells."""
        maker, taker = self._fees
        if order.side == OrderSide.BUY:
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

    def _release(self, order: PaperOrder) -> None:
        if order.reserved <= 0:
            return
        balance = self._balance(order.quote if order.side == OrderSide.BUY else order.base)
        balance.used -= order.reserved
        balance.free += order.reserved
        balance.save(update_fields=["free", "used"])
        order.reserved = ZERO

    def _fill_market_now(self, order: PaperOrder, current: Decimal) -> None:
        volume = self.prices.last_volume(order.symbol)
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
        """Move balances for a fill of ``qty`` at ``price``; returns False (and rejects) if unaffordable."""
        if qty <= 0:
            return False
        maker_fee, taker_fee = self._fees
        cost = q(qty * price)
        fee = q(cost * (maker_fee if maker else taker_fee))
        remaining = order.remaining
        release = order.reserved if qty >= remaining else q(order.reserved * qty / remaining, ROUND_DOWN)
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
        )
        if order.filled >= order.amount:
            self._finish(order, OrderStatus.FILLED)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
            order.save()
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
        return True

    def _finish(self, order: PaperOrder, status: str, reason: str = "") -> None:
        self._release(order)
        order.status = status
        order.reason = reason
        order.save()

    # --------------------------------------------------------------- matching
    def process(self, symbol: str | None = None) -> int:
        """Fill resting orders against the candles closed since they were last checked; returns fills."""
        with transaction.atomic():
            self._lock()
            return self._process(symbol=symbol)

    def _process(self, *, symbol: str | None) -> int:
        orders = self.account.orders.open().order_by("created_at", "id")
        if symbol:
            orders = orders.filter(symbol=symbol)
        count = 0
        by_symbol: dict[str, list[PaperOrder]] = {}
        for order in orders:
            by_symbol.setdefault(order.symbol, []).append(order)
        for sym, pending in by_symbol.items():
            since = min(max(o.rests_from, o.checked_until) for o in pending)
            bars = self.prices.candles_since(sym, since)
            if not bars:
                continue
            position_side = self._position_side(pending[0].base)
            for bar in bars:
                for order in pending:
                    if order.status not in OPEN_STATUSES or bar.timestamp < max(
                        order.rests_from, order.checked_until
                    ):
                        continue
                    filled = self._evaluate(order, bar, position_side)
                    order.checked_until = bar.timestamp + 1
                    if filled:
                        count += 1
                        position_side = self._position_side(order.base)
            # One write for the orders that only moved on, not one per order and candle.
            groups: dict[tuple[int, bool], list[int]] = {}
            for order in pending:
                if order.status in OPEN_STATUSES:
                    groups.setdefault((order.checked_until, order.triggered), []).append(order.pk)
            for (checked_until, triggered), ids in groups.items():
                PaperOrder.objects.filter(pk__in=ids).update(
                    checked_until=checked_until, triggered=triggered, updated_at=timezone.now()
                )
        return count

    def _position_side(self, base: str) -> int:
        # Spot: holding the base asset is a long, which sets the engine's intra-candle path.
        balance = PaperBalance.objects.filter(account=self.account, asset=base).first()
        return 1 if balance is not None and balance.total > 0 else 0

    def _evaluate(self, order: PaperOrder, bar: Bar, position_side: int) -> int:
        side = SIDE_SIGN[order.side]
        kind = order.type
        qty_cap = fills.partial_fill_size(float(order.remaining), bar.volume, self._mvf())
        qty = min(order.remaining, q(dec(qty_cap)))
        if qty <= 0:
            return 0
        if kind == OrderType.MARKET:  # the remainder of a partially filled market order: next open
            price = fills.market_fill_price(bar.open, side, self._slippage(), float(qty), bar.volume)
            return int(self._apply_fill(order, qty, dec(price), maker=False, timestamp=bar.timestamp))
        if kind == OrderType.STOP_LIMIT and order.triggered:
            kind = OrderType.LIMIT  # a triggered stop-limit is a plain resting limit
        level_price = None if order.price is None else float(order.price)
        stop = None if order.stop_price is None else float(order.stop_price)
        fill, _ = fills.evaluate_order(
            kind,
            side,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            price=level_price,
            stop_price=stop,
            position_side=position_side,
        )
        if kind == OrderType.STOP_LIMIT:
            path = fills.candle_path(bar.open, bar.high, bar.low, bar.close, position_side)
            direction = fills.trigger_direction(OrderType.STOP_LIMIT, side)
            hit = next((k for k, point in enumerate(path) if fills.crossed(direction, stop, point)), None)
            if hit is None:
                return 0
            order.triggered = True
            trigger = path[0] if hit == 0 else stop
            marketable = (side > 0 and trigger <= level_price) or (side < 0 and trigger >= level_price)
            if fill is None:
                return 0
            return int(self._apply_fill(order, qty, dec(fill), maker=not marketable, timestamp=bar.timestamp))
        if fill is None:
            return 0
        if kind in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT):
            fill = self._slippage().apply(fill, side, float(qty), bar.volume)
            return int(self._apply_fill(order, qty, dec(fill), maker=False, timestamp=bar.timestamp))
        return int(self._apply_fill(order, qty, dec(fill), maker=True, timestamp=bar.timestamp))

    # ------------------------------------------------------------------ reads
    def _get(self, order_id: str, symbol: str | None = None) -> PaperOrder:
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
            self._process(symbol=symbol)
            order = self._get(order_id, symbol)
            if order.status not in OPEN_STATUSES:
                # Like Binance ("Unknown order sent"): a filled or cancelled order cannot be cancelled.
                raise OrderNotFound(
                    f"Order {order_id} is {order.get_status_display().lower()}; nothing to cancel."
                )
            self._finish(order, OrderStatus.CANCELLED, "cancelled by user")
            return self._to_order(order)

    def cancel_all(self, symbol: str | None = None) -> int:
        with transaction.atomic():
            self._lock()
            self._process(symbol=symbol)
            orders = self.account.orders.open()
            if symbol:
                orders = orders.filter(symbol=symbol)
            count = 0
            for order in orders:
                self._finish(order, OrderStatus.CANCELLED, "cancelled by user")
                count += 1
            return count

    def fetch_order(self, order_id: str, symbol: str) -> Order:
        self.process(symbol)
        return self._to_order(self._get(order_id, symbol))

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        self.process(symbol)
        orders = self.account.orders.open().order_by("created_at", "id")
        if symbol:
            orders = orders.filter(symbol=symbol)
        return [self._to_order(o) for o in orders]

    def fetch_my_trades(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[Trade]:
        self.process(symbol)
        trades = self.account.trades.all().order_by("timestamp", "id")
        if symbol:
            trades = trades.filter(symbol=symbol)
        if since is not None:
            trades = trades.filter(timestamp__gte=since)
        if limit:
            trades = trades[:limit]
        return [
            Trade(
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
            for t in trades
        ]

    def fetch_balance(self) -> AccountBalance:
        self.process()
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
        for symbol in Market.objects.filter(exchange__slug=self.account.exchange, type="spot").values_list(
            "symbol", flat=True
        ):
            info = self._market_info(symbol)
            if info is not None:
                markets[symbol] = info
        return markets

    def fetch_ticker(self, symbol: str) -> Ticker:
        split_symbol(symbol)
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
        return ConnectionCheck(ok=True, spot=True, message="Paper account: simulated, always available.")

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


@transaction.atomic
def paper_account_reset(*, account: PaperAccount, balances: dict[str, Decimal] | None = None) -> PaperAccount:
    """Cancel everything and restore the initial balances (or set new ones, which become the initial)."""
    account = PaperAccount.objects.select_for_update().get(pk=account.pk)
    if balances is not None:
        account.initial_balances = {asset.upper(): str(amount) for asset, amount in balances.items()}
    account.orders.all().delete()  # trades cascade
    account.balances.all().delete()
    PaperBalance.objects.bulk_create(
        PaperBalance(account=account, asset=asset, free=Decimal(amount))
        for asset, amount in sorted(account.initial_balances.items())
    )
    account.reset_at = timezone.now()
    account.save(update_fields=["initial_balances", "reset_at"])
    return account
