"""The risk rules as pure functions: an order (or none), the limits, the exposure -> the breaches.

No database here: ``apps.risk.pretrade`` and ``apps.risk.monitoring`` load the
limits and the exposure (a few queries) and call these; the tests call them
with plain values. Measures and boundaries are documented in ``docs/risk.md``:
every limit passes *at* its value and fails above it, except the losing streak,
whose cool-down starts when the streak *reaches* its count.

Closing orders (reduce-only, or on the opposite side of the position and no
larger than it) only ever reduce risk, so no limit blocks them, the kill switch
included: a trader must always be able to get out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

ZERO = Decimal("0")

# Kinds (the values of ``apps.risk.models.LimitKind``; plain strings keep this module Django-free).
POSITION_QUANTITY = "position_quantity"
POSITION_NOTIONAL = "position_notional"
ORDER_NOTIONAL = "order_notional"
OPEN_ORDERS = "open_orders"
LEVERAGE = "leverage"
ASSET_EXPOSURE = "asset_exposure"
TOTAL_EXPOSURE = "total_exposure"
DAILY_LOSS = "daily_loss"
DRAWDOWN = "drawdown"
LOSING_STREAK = "losing_streak"
KILL_SWITCH = "kill_switch"

#: Kinds whose measure needs equity; they are skipped while equity is unknown.
EQUITY_KINDS = frozenset({LEVERAGE, ASSET_EXPOSURE, TOTAL_EXPOSURE, DRAWDOWN})
#: Kinds that describe the portfolio (the monitor checks them without an order).
PORTFOLIO_KINDS = frozenset(
    {POSITION_QUANTITY, POSITION_NOTIONAL, LEVERAGE, ASSET_EXPOSURE, TOTAL_EXPOSURE, DAILY_LOSS, DRAWDOWN}
)


@dataclass(frozen=True)
class Limit:
    """A limit as the rules see it; ``id`` is ``None`` for the profile's user-wide limits."""

    kind: str
    value: Decimal
    action: str = "reject"
    id: int | None = None
    bot_id: int | None = None
    account_key: str = ""  # "paper:<id>" / "live:<id>"; "" = every account
    symbol: str = ""
    asset: str = ""
    cooldown_minutes: int = 60
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.kind.replace("_", " ")

    def covers(self, *, bot_id: int | None, account_key: str, symbol: str) -> bool:
        return (
            (self.bot_id is None or self.bot_id == bot_id)
            and (not self.account_key or self.account_key == account_key)
            and (not self.symbol or self.symbol == symbol)
        )


@dataclass(frozen=True)
class OrderIntent:
    """An order about to be placed; ``price`` is the reference price (limit, trigger or last)."""

    symbol: str
    side: str  # buy | sell
    amount: Decimal
    price: Decimal
    account_key: str
    bot_id: int | None = None
    reduce_only: bool = False

    @property
    def base(self) -> str:
        return base_asset(self.symbol)

    @property
    def signed(self) -> Decimal:
        return self.amount if self.side == "buy" else -self.amount

    @property
    def notional(self) -> Decimal:
        return self.amount * self.price


@dataclass(slots=True)  # not frozen: built by the hundred per check, a frozen init costs twice
class PositionState:
    account_key: str
    symbol: str
    signed_size: Decimal  # + long, - short, base units
    mark: Decimal  # mark (or last fill) price; notional = |size| * mark
    leverage: Decimal = Decimal("1")
    liquidation_price: Decimal | None = None

    @property
    def base(self) -> str:
        return base_asset(self.symbol)

    @property
    def notional(self) -> Decimal:
        return self.signed_size * self.mark


@dataclass(slots=True)  # not frozen: built by the hundred per check, a frozen init costs twice
class OpenOrderState:
    account_key: str
    symbol: str
    signed_remaining: Decimal
    price: Decimal
    bot_id: int | None = None
    reduce_only: bool = False


@dataclass
class Exposure:
    """The user's current state, as the loaders build it."""

    equity: Decimal | None
    positions: list[PositionState] = field(default_factory=list)
    open_orders: list[OpenOrderState] = field(default_factory=list)
    daily_pnl: Decimal = ZERO
    peak_equity: Decimal | None = None
    consecutive_losses: int = 0
    last_loss_at: datetime | None = None
    now: datetime | None = None
    kill_switch: bool = False
    currency: str = "USDT"
    unrealized: Decimal = ZERO  # open positions' unrealized P&L (today's P&L counts its change)


@dataclass(frozen=True)
class Breach:
    """One limit broken: which (``code`` = the kind, ``limit``), by how much (``measured`` vs ``threshold``)."""

    code: str
    message: str
    measured: Decimal = ZERO
    threshold: Decimal = ZERO
    action: str = "reject"
    limit_id: int | None = None
    limit_name: str = ""
    bot_id: int | None = None
    symbol: str = ""

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "limit": self.limit_name or self.code,
            "limit_id": self.limit_id,
            "measured": _text(self.measured),
            "threshold": _text(self.threshold),
            "action": self.action,
            "message": self.message,
        }


def base_asset(symbol: str) -> str:
    return symbol.split("/", 1)[0]


def fmt(value: Decimal) -> str:
    """A number for a message: at most 8 places, no padding zeros."""
    return _text(value)


def _text(value: Decimal) -> str:
    value = value.quantize(Decimal("1e-8")) if value.as_tuple().exponent < -8 else value  # type: ignore[operator]
    return f"{value.normalize():f}"


# ---------------------------------------------------------------- measures
def _position_qty(exposure: Exposure, *, account_key: str, symbol: str) -> Decimal:
    return sum(
        (
            p.signed_size
            for p in exposure.positions
            if p.symbol == symbol and (not account_key or p.account_key == account_key)
        ),
        ZERO,
    )


def net_by_asset(
    exposure: Exposure, *, account_key: str = "", with_orders: bool = False
) -> dict[str, Decimal]:
    """Signed value per base asset (positions, plus open orders if asked) in the quote currency."""
    net: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for p in exposure.positions:
        if not account_key or p.account_key == account_key:
            net[p.base] += p.notional
    if with_orders:
        for o in exposure.open_orders:
            if not o.reduce_only and (not account_key or o.account_key == account_key):
                net[base_asset(o.symbol)] += o.signed_remaining * o.price
    return dict(net)


def gross_position_value(exposure: Exposure, *, account_key: str = "") -> Decimal:
    return sum(
        (abs(p.notional) for p in exposure.positions if not account_key or p.account_key == account_key), ZERO
    )


def drawdown(exposure: Exposure) -> Decimal:
    if exposure.equity is None or not exposure.peak_equity or exposure.peak_equity <= 0:
        return ZERO
    return max(ZERO, (exposure.peak_equity - exposure.equity) / exposure.peak_equity)


class _Book:
    """Sums over the positions and open orders, computed once per check and scope (not once per limit):
    50 limits over 200 positions stay well inside the pre-trade budget."""

    def __init__(self, exposure: Exposure):
        self.exposure = exposure
        self._memo: dict[tuple, object] = {}

    def _get(self, key: tuple, build):
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def _positions(self, account_key: str) -> dict[str, tuple[Decimal, Decimal]]:
        def build():
            table: dict[str, tuple[Decimal, Decimal]] = {}
            for p in self.exposure.positions:
                if not account_key or p.account_key == account_key:
                    qty, _ = table.get(p.symbol, (ZERO, p.mark))
                    table[p.symbol] = (qty + p.signed_size, p.mark)
            return table

        return self._get(("positions", account_key), build)  # type: ignore[return-value]

    def position_qty(self, account_key: str, symbol: str) -> Decimal:
        return self._positions(account_key).get(symbol, (ZERO, ZERO))[0]

    def mark(self, account_key: str, symbol: str) -> Decimal:
        return self._positions(account_key).get(symbol, (ZERO, ZERO))[1]

    def pending_qty(self, account_key: str, symbol: str) -> Decimal:
        def build():
            table: dict[str, Decimal] = defaultdict(lambda: ZERO)
            for o in self.exposure.open_orders:
                if not o.reduce_only and (not account_key or o.account_key == account_key):
                    table[o.symbol] += o.signed_remaining
            return dict(table)

        return self._get(("pending", account_key), build).get(symbol, ZERO)  # type: ignore[union-attr]

    def net(self, account_key: str, with_orders: bool) -> dict[str, Decimal]:
        return self._get(  # type: ignore[return-value]
            ("net", account_key, with_orders),
            lambda: net_by_asset(self.exposure, account_key=account_key, with_orders=with_orders),
        )

    def gross(self, account_key: str) -> Decimal:
        return self._get(  # type: ignore[return-value]
            ("gross", account_key), lambda: gross_position_value(self.exposure, account_key=account_key)
        )

    def open_orders(self, limit: Limit) -> int:
        return self._get(
            ("open", limit.bot_id, limit.account_key, limit.symbol),
            lambda: sum(
                1
                for o in self.exposure.open_orders
                if limit.covers(bot_id=o.bot_id, account_key=o.account_key, symbol=o.symbol)
            ),
        )  # type: ignore[return-value]


def is_closing(order: OrderIntent, exposure: Exposure) -> bool:
    """Whether the order can only shrink the position it trades against."""
    position = _position_qty(exposure, account_key=order.account_key, symbol=order.symbol)
    opposite = position != 0 and (position > 0) != (order.signed > 0)
    if order.reduce_only and (":" in order.symbol or opposite):
        return True  # futures reduce-only is enforced by the exchange; on spot it must really reduce
    return opposite and order.amount <= abs(position)


# ------------------------------------------------------------------- rules
def order_breaches(order: OrderIntent, limits: Iterable[Limit], exposure: Exposure) -> list[Breach]:
    """The limits ``order`` would break, in the order of ``limits``; empty = it may go."""
    if is_closing(order, exposure):
        return []
    breaches: list[Breach] = []
    book = _Book(exposure)
    if exposure.kill_switch:
        breaches.append(
            Breach(
                KILL_SWITCH,
                "The kill switch is on: no new orders are accepted until it is released.",
                limit_name="kill switch",
                bot_id=order.bot_id,
                symbol=order.symbol,
            )
        )
    for limit in limits:
        if not limit.covers(bot_id=order.bot_id, account_key=order.account_key, symbol=order.symbol):
            continue
        breach = _order_rule(order, limit, exposure, book)
        if breach is not None:
            breaches.append(breach)
    return breaches


def _breach(limit: Limit, measured: Decimal, message: str, *, bot_id=None, symbol="") -> Breach:
    return Breach(
        limit.kind,
        f"{limit.name[:1].upper()}{limit.name[1:]}: {message}",
        measured,
        limit.value,
        limit.action,
        limit.id,
        limit.name,
        bot_id,
        symbol,
    )


def _money(value: Decimal, exposure: Exposure) -> str:
    return f"{_text(value)} {exposure.currency}"


def _order_rule(order: OrderIntent, limit: Limit, exposure: Exposure, book: _Book) -> Breach | None:
    kind, value = limit.kind, limit.value
    scope_account = limit.account_key  # "" = the user's positions in every account
    equity = exposure.equity
    if kind in EQUITY_KINDS and (equity is None or equity <= 0):
        if equity is None:
            return None
        return _breach(limit, ZERO, "there is no equity to trade against.", bot_id=order.bot_id)
    if kind == ORDER_NOTIONAL:
        measured = order.notional
        if measured > value:
            return _breach(
                limit, measured, f"this order is worth {_money(measured, exposure)}, the limit is "
                f"{_money(value, exposure)}.", bot_id=order.bot_id, symbol=order.symbol,
            )  # fmt: skip
        return None
    if kind == OPEN_ORDERS:
        count = book.open_orders(limit)
        measured = Decimal(count + 1)
        if measured > value:
            return _breach(
                limit, measured, f"this would be open order number {count + 1}, the limit is {_text(value)}.",
                bot_id=order.bot_id, symbol=order.symbol,
            )  # fmt: skip
        return None
    if kind in (POSITION_QUANTITY, POSITION_NOTIONAL):
        projected = (
            book.position_qty(scope_account, order.symbol)
            + book.pending_qty(scope_account, order.symbol)
            + order.signed
        )
        if kind == POSITION_QUANTITY:
            measured = abs(projected)
            text = f"the {order.symbol} position would be {_text(measured)} {order.base}, the limit is {_text(value)}."
        else:
            measured = abs(projected) * order.price
            text = (
                f"the {order.symbol} position would be worth {_money(measured, exposure)}, "
                f"the limit is {_money(value, exposure)}."
            )
        return (
            _breach(limit, measured, text, bot_id=order.bot_id, symbol=order.symbol)
            if measured > value
            else None
        )
    if kind == LEVERAGE:
        measured = _after_gross(order, book, scope_account) / equity  # type: ignore[operator]
        if measured > value:
            return _breach(
                limit, measured, f"leverage would be {_text(measured.quantize(Decimal('0.0001')))}x, "
                f"the limit is {_text(value)}x.", bot_id=order.bot_id, symbol=order.symbol,
            )  # fmt: skip
        return None
    if kind in (ASSET_EXPOSURE, TOTAL_EXPOSURE):
        net = dict(book.net(scope_account, True))
        net[order.base] = net.get(order.base, ZERO) + order.signed * order.price
        if kind == ASSET_EXPOSURE:
            if limit.asset and limit.asset != order.base:
                return None
            measured = abs(net[order.base]) / equity  # type: ignore[operator]
            what = f"{order.base} exposure"
        else:
            measured = sum((abs(v) for v in net.values()), ZERO) / equity  # type: ignore[operator]
            what = "total exposure"
        if measured > value:
            return _breach(
                limit, measured, f"{what} would be {_pct(measured)} of equity, the limit is {_pct(value)}.",
                bot_id=order.bot_id, symbol=order.symbol,
            )  # fmt: skip
        return None
    if kind in (DAILY_LOSS, DRAWDOWN):
        breach = _state_rule(limit, exposure)
        return None if breach is None else _with_order(breach, order)
    if kind == LOSING_STREAK:
        if exposure.consecutive_losses >= value and exposure.last_loss_at is not None and exposure.now:
            until = exposure.last_loss_at + timedelta(minutes=limit.cooldown_minutes)
            if exposure.now < until:
                return _breach(
                    limit, Decimal(exposure.consecutive_losses),
                    f"{exposure.consecutive_losses} losing trades in a row (limit {_text(value)}); "
                    f"cooling down until {until:%Y-%m-%d %H:%M} UTC.", bot_id=order.bot_id, symbol=order.symbol,
                )  # fmt: skip
        return None
    return None


def _with_order(breach: Breach, order: OrderIntent) -> Breach:
    return Breach(**{**breach.__dict__, "bot_id": order.bot_id, "symbol": order.symbol})


def _after_gross(order: OrderIntent, book: _Book, account_key: str) -> Decimal:
    """Gross position value with the order filled (its market's position moves by the order)."""
    gross = book.gross(account_key)
    if account_key and account_key != order.account_key:
        return gross
    held = book.position_qty(order.account_key, order.symbol)
    mark = book.mark(order.account_key, order.symbol)
    return gross - abs(held) * mark + abs(held + order.signed) * order.price


def _pct(value: Decimal) -> str:
    return f"{_text((value * 100).quantize(Decimal('0.01')))}%"


def _state_rule(limit: Limit, exposure: Exposure) -> Breach | None:
    """Daily loss and drawdown: facts about the account, whatever the order."""
    if limit.kind == DAILY_LOSS:
        loss = max(ZERO, -exposure.daily_pnl)
        if loss > limit.value:
            return _breach(
                limit,
                loss,
                f"today's loss is {_money(loss, exposure)}, the limit is {_money(limit.value, exposure)}.",
            )
        return None
    if limit.kind == DRAWDOWN:
        if exposure.equity is None:
            return None
        measured = drawdown(exposure)
        if measured > limit.value:
            return _breach(
                limit, measured, f"drawdown is {_pct(measured)} from peak, the limit is {_pct(limit.value)}."
            )
    return None


def portfolio_breaches(limits: Iterable[Limit], exposure: Exposure) -> list[Breach]:
    """The portfolio limits broken right now, without any order (the monitor's check)."""
    breaches: list[Breach] = []
    for limit in limits:
        if limit.kind not in PORTFOLIO_KINDS:
            continue
        equity = exposure.equity
        if limit.kind in EQUITY_KINDS and (equity is None or equity <= 0):
            continue
        if limit.kind in (DAILY_LOSS, DRAWDOWN):
            breach = _state_rule(limit, exposure)
            if breach is not None:
                breaches.append(_with_scope(breach, limit))
            continue
        if limit.kind == LEVERAGE:
            measured = gross_position_value(exposure, account_key=limit.account_key) / equity  # type: ignore[operator]
            if measured > limit.value:
                breaches.append(
                    _with_scope(
                        _breach(
                            limit,
                            measured,
                            f"leverage is {_text(measured.quantize(Decimal('0.0001')))}x, "
                            f"the limit is {_text(limit.value)}x.",
                        ),
                        limit,
                    )
                )
            continue
        if limit.kind in (ASSET_EXPOSURE, TOTAL_EXPOSURE):
            net = net_by_asset(exposure, account_key=limit.account_key)
            if limit.kind == TOTAL_EXPOSURE:
                measured = sum((abs(v) for v in net.values()), ZERO) / equity  # type: ignore[operator]
                if measured > limit.value:
                    breaches.append(
                        _with_scope(
                            _breach(
                                limit,
                                measured,
                                f"total exposure is {_pct(measured)} of equity, "
                                f"the limit is {_pct(limit.value)}.",
                            ),
                            limit,
                        )
                    )
                continue
            for asset, value in sorted(net.items()):
                if limit.asset and asset != limit.asset:
                    continue
                measured = abs(value) / equity  # type: ignore[operator]
                if measured > limit.value:
                    breaches.append(
                        _with_scope(
                            _breach(
                                limit,
                                measured,
                                f"{asset} exposure is {_pct(measured)} of equity, "
                                f"the limit is {_pct(limit.value)}.",
                                symbol=asset,
                            ),
                            limit,
                        )
                    )
            continue
        # Position size: each market the limit covers.
        symbols = sorted(
            {p.symbol for p in exposure.positions if not limit.symbol or p.symbol == limit.symbol}
        )
        for symbol in symbols:
            qty = _position_qty(exposure, account_key=limit.account_key, symbol=symbol)
            mark = next((p.mark for p in exposure.positions if p.symbol == symbol), ZERO)
            measured = abs(qty) if limit.kind == POSITION_QUANTITY else abs(qty) * mark
            if measured > limit.value:
                breaches.append(
                    _with_scope(
                        _breach(
                            limit,
                            measured,
                            f"the {symbol} position is {_text(measured)}, the limit is {_text(limit.value)}.",
                            symbol=symbol,
                        ),
                        limit,
                    )
                )
    return breaches


def _with_scope(breach: Breach, limit: Limit) -> Breach:
    return Breach(**{**breach.__dict__, "bot_id": limit.bot_id, "symbol": breach.symbol or limit.symbol})
