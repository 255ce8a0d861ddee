"""The paper exchange's USD-M futures bookkeeping: leverage, margin modes, liquidation, funding, positions.

A mixin of ``PaperGateway`` (``apps/exchanges/gateway/paper.py``), which holds
the account, its locked rows and the order bookkeeping this part calls back
into (``_balance``, ``_lock``, ``_forget``, ``_loaded``, ``_finish``,
``_publish_fill``). The rules are the engine's: leverage caps, maintenance
rates and liquidation prices from ``engine.tiers``, funding times from
``engine.margin``; only the Decimal bookkeeping is ours:

* one net position per symbol (one-way mode) with its leverage (capped by the
  market's leverage tiers) and margin mode, both refused while a position is open;
* opening holds ``notional / leverage`` of the quote balance as margin; the part
  of an order that closes the opposite position frees its margin and realizes its
  P&L first (a reversal), and reduce-only orders that no longer reduce anything
  are cancelled;
* the liquidation price is the engine's Binance formula; a liquidation settles at
  the bankruptcy price, losing the position's whole margin (cross: the balance);
* funding is charged at the open of the first candle at or after each funding
  time (or the first price seen after it, if that comes first), ``size x price x
  rate`` (longs pay a positive rate), from the account's constant rate or the
  stored funding history.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import numpy as np
from django.db import transaction

from apps.backtests.engine.config import BacktestConfig
from apps.backtests.engine.margin import funding_schedule, normalize_funding
from apps.backtests.engine.tiers import LeverageTiers, resolve_tiers
from apps.core.money import ZERO
from apps.exchanges.gateway.base import Position, to_decimal
from apps.exchanges.gateway.errors import InvalidOrder
from apps.exchanges.gateway.paper_common import SIDE_SIGN, dec, q, split_symbol
from apps.exchanges.gateway.prices import Bar, PriceSource
from apps.exchanges.models import PaperAccount, PaperBalance, PaperOrder, PaperPosition, PaperTrade
from apps.orders.enums import OPEN_STATUSES, OrderSide, OrderStatus, OrderType

FUTURES = PaperAccount.MarketType.FUTURES
CROSS = PaperPosition.MarginMode.CROSS
# The engine's maintenance rate for markets without shipped or fetched tiers.
DEFAULT_MMR = BacktestConfig.maintenance_margin_rate


class PaperFutures:
    """USD-M futures positions of a ``PaperGateway``'s account (a spot account has none)."""

    account: PaperAccount
    prices: PriceSource
    _positions: dict[str, PaperPosition]
    _balances: dict[str, PaperBalance]
    _tiers_cache: dict[str, LeverageTiers]

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

    def _futures_position(self, symbol: str) -> PaperPosition | None:
        if not self.futures:
            return None
        return self._position(symbol, split_symbol(symbol, futures=True)[1])

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

    def _margin_need(self, order: PaperOrder, ref_price: Decimal, fee_rate: Decimal) -> Decimal:
        """What a futures order holds while open: margin for the part that opens, plus the fee."""
        if order.reduce_only:
            return ZERO  # closes only: frees margin, never takes any
        position = self._position(order.symbol, order.quote)
        closing = self._closable(position, order)
        opening = max(order.amount - closing, ZERO)
        need = q(opening * ref_price / position.leverage + order.amount * ref_price * fee_rate, ROUND_UP)
        if closing:
            # One-way mode: the part that closes the opposite position frees its margin and
            # realizes its P&L first, which pays for the part that opens (a reversal).
            freed = q(position.margin * closing / abs(position.size), ROUND_DOWN)
            pnl = q(position.side * closing * (ref_price - position.entry_price))
            need = max(need - freed - pnl, ZERO)
        return need

    @staticmethod
    def _closable(position: PaperPosition, order: PaperOrder) -> Decimal:
        """How much of ``order`` closes the opposite futures position (one-way mode)."""
        if not position.size or (position.size > 0) == (order.side == OrderSide.BUY):
            return ZERO
        return min(order.amount, abs(position.size))

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
        self._set_while_flat(symbol, quote, "leverage", value)
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
        self._set_while_flat(symbol, quote, "margin_mode", mode)
        return mode

    def _set_while_flat(self, symbol: str, quote: str, field: str, value: Any) -> None:
        """Set a position setting (leverage, margin mode), refused while the position is open."""
        with transaction.atomic():
            self._lock()
            self._forget()
            position = self._position(symbol, quote)
            if position.size:
                what = field.replace("_", " ")
                raise InvalidOrder(
                    f"Close the position before changing its {what}.", fields={field: "position open"}
                )
            setattr(position, field, value)
            position.save(update_fields=[field, "updated_at"])

    def fetch_positions(self, symbols: list[str] | None = None) -> list[Position]:
        if not self.futures:
            return []
        if self.match_on_read:
            self.match()
        self._balances.clear()  # a read outside a locked call sees the balances as they stand
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
