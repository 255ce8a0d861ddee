"""Placing, cancelling and syncing orders, and the fills and positions they produce.

An order is written as *pending* with its client order id before anything is
sent; it is sent to the gateway after that write commits, and the answer
(status, fills, position) is recorded. The client order id makes every step
idempotent: placing twice with one id returns the first order, a lost answer
is found again by ``order_sync`` through the id, never sent a second time.

Brackets (an entry with a stop-loss and a take-profit): both legs are written
*held* with the entry and wait for it to fill. Then, on a gateway with native
OCO (``supports_oco``: the paper exchange), the two legs are placed as one OCO
pair, which the exchange fills by its own rules and whose other leg it cancels;
``order_sync`` records both. Elsewhere (ccxt's unified API has no OCO) the
platform emulates it: the take-profit leg rests at the exchange, the stop-loss
leg stays held by the platform, which watches the price (``order_sync``) and
fires it as a market order; when one leg fills the other is cancelled. Either
way the same coins are reserved once, as spot exchanges require.

Every change is pushed to the owner's browser as ``order.*``, ``fill.*`` and
``position.*`` events after the commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from apps.core.compiled import compiled
from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.core.events import events_batched, publish_event
from apps.core.money import ZERO, as_stored, quantize_amount, shown_need
from apps.exchanges.gateway import (
    ExchangeError,
    ExchangeGateway,
    InsufficientFunds,
    InvalidOrder,
    MarketInfo,
    OrderNotFound,
    OrderRequest,
)
from apps.exchanges.gateway import Order as RemoteOrder
from apps.exchanges.models import ExchangeConnection, PaperAccount
from apps.marketdata import live
from apps.orders.enums import PRICED_TYPES, TRIGGERED_TYPES, OrderSide, OrderStatus, OrderType, TimeInForce
from apps.orders.lifecycle import transition
from apps.orders.models import Fill, Order, Position, account_filter
from apps.orders.signals import order_finished
from apps.risk import pretrade
from apps.risk.selectors import kill_switch_is_on

logger = logging.getLogger(__name__)

Account = ExchangeConnection | PaperAccount


# ----------------------------------------------------------------- gateways
def account_gateway(account: Account) -> ExchangeGateway:
    """The gateway that trades for ``account`` (the paper exchange or the connection's exchange)."""
    from apps.exchanges import services as exchanges

    if isinstance(account, PaperAccount):
        return exchanges.paper_gateway(account)
    return exchanges.gateway_for_connection(account)


def _account_of(obj: Order | Position) -> Account:
    return obj.paper_account if obj.paper_account_id else obj.connection


def _exchange_of(account: Account) -> str:
    return account.exchange


def _owner_id(account: Account) -> int:
    return account.user_id


# ------------------------------------------------------------------- events
def order_payload(order: Order) -> dict[str, Any]:
    return {
        "id": order.pk,
        "client_order_id": order.client_order_id,
        "bot_id": order.bot_id,
        "paper_account_id": order.paper_account_id,
        "connection_id": order.connection_id,
        "parent_id": order.parent_id,
        "role": order.role,
        "exchange": order.exchange,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "amount": str(order.amount),
        "price": None if order.price is None else str(order.price),
        "stop_price": None if order.stop_price is None else str(order.stop_price),
        "status": order.status,
        "filled": str(order.filled),
        "average_price": None if order.average_price is None else str(order.average_price),
        "fee": str(order.fee),
        "fee_asset": order.fee_asset,
        "reason": order.reason,
    }


def _publish_order(order: Order, event: str = "order.updated") -> None:
    publish_event(order.owner_id, event, order_payload(order), on_commit=True)


def _publish_position(position: Position) -> None:
    publish_event(
        position.owner_id,
        "position.updated",
        {
            "id": position.pk,
            "symbol": position.symbol,
            "side": position.side,
            "size": str(position.size),
            "average_entry": None if position.average_entry is None else str(position.average_entry),
            "realized_pnl": str(position.realized_pnl),
            "unrealized_pnl": str(position.unrealized_pnl),
            "paper_account_id": position.paper_account_id,
            "connection_id": position.connection_id,
        },
        on_commit=True,
    )


# --------------------------------------------------------------- validation
def _decimal(value: Any, field: str, errors: dict[str, str]) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        errors[field] = "not a number"
        return None
    if not number.is_finite() or number <= 0:
        errors[field] = "must be greater than 0"
        return None
    return number


def _off_step(value: Decimal, step: Decimal | None) -> bool:
    return bool(step) and (value % step) != 0


def _market_info(gateway: ExchangeGateway, symbol: str) -> MarketInfo | None:
    try:
        return gateway.market(symbol)
    except InvalidOrder:
        # The paper exchange trades any market it has prices for; its catalog row is optional.
        if getattr(gateway, "name", "") == "paper":
            return None
        raise


@dataclass(frozen=True)
class _Checked:
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    trailing_percent: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    reference: Decimal  # the price the cost and balance checks use


def _validate(
    *,
    gateway: ExchangeGateway,
    account: Account,
    symbol: str,
    side: str,
    type: str,
    amount: Any,
    price: Any,
    stop_price: Any,
    trailing_percent: Any,
    time_in_force: str,
    reduce_only: bool,
    stop_loss: Any,
    take_profit: Any,
    check_balance: bool = True,
) -> _Checked:
    """Every problem with the order at once (one ``InvalidOrder`` with all fields), or the clean values.

    ``check_balance=False``: the balance is not read here; the caller has the exchange's own
    check refuse it (an inline paper order: ``order_place``).
    """
    errors: dict[str, str] = {}
    if side not in OrderSide.values:
        errors["side"] = "must be buy or sell"
    if type not in OrderType.values:
        errors["type"] = "one of " + ", ".join(OrderType.values)
    if time_in_force not in TimeInForce.values:
        errors["time_in_force"] = "one of " + ", ".join(TimeInForce.values)
    amount_d = _decimal(amount, "amount", errors)
    if amount_d is None and "amount" not in errors:
        errors["amount"] = "required"
    price_d = _decimal(price, "price", errors)
    stop_d = _decimal(stop_price, "stop_price", errors)
    trail_d = _decimal(trailing_percent, "trailing_percent", errors)
    sl_d = _decimal(stop_loss, "stop_loss", errors)
    tp_d = _decimal(take_profit, "take_profit", errors)
    if type in PRICED_TYPES and price_d is None and "price" not in errors:
        errors["price"] = f"required for {type} orders"
    if type in TRIGGERED_TYPES and stop_d is None and "stop_price" not in errors:
        errors["stop_price"] = f"required for {type} orders"
    if type == OrderType.TRAILING_STOP and trail_d is None and "trailing_percent" not in errors:
        errors["trailing_percent"] = "required for trailing stops"
    if (sl_d or tp_d) and type not in (OrderType.MARKET, OrderType.LIMIT):
        errors["type"] = "a bracket (stop_loss/take_profit) needs a market or limit entry"
    if (sl_d or tp_d) and reduce_only:
        errors["reduce_only"] = "a bracket entry opens a position; it cannot be reduce-only"
    if errors:
        raise InvalidOrder(_first(errors), fields=errors)

    info = _market_info(gateway, symbol)
    if info is not None and not info.active:
        errors["symbol"] = "the market is not trading"
    if price_d is not None:
        reference = price_d
    elif stop_d is not None:
        reference = stop_d
    else:
        ticker = gateway.fetch_ticker(symbol)
        reference = ticker.last or ticker.ask or ticker.bid or ZERO
    if info is not None:
        if _off_step(amount_d, info.amount_step):
            errors["amount"] = f"must be a multiple of {info.amount_step.normalize():f} {info.base}"
        elif info.min_amount and amount_d < info.min_amount:
            errors["amount"] = f"minimum {info.min_amount.normalize():f} {info.base}"
        elif info.max_amount and amount_d > info.max_amount:
            errors["amount"] = f"maximum {info.max_amount.normalize():f} {info.base}"
        elif info.min_cost and reference and amount_d * reference < info.min_cost:
            errors["amount"] = f"order value below the minimum of {info.min_cost.normalize():f} {info.quote}"
        for field, value in (
            ("price", price_d),
            ("stop_price", stop_d),
            ("stop_loss", sl_d),
            ("take_profit", tp_d),
        ):
            if value is not None and _off_step(value, info.price_step):
                errors[field] = f"must be a multiple of {info.price_step.normalize():f} {info.quote}"
    if sl_d is not None and reference:
        if side == OrderSide.BUY and sl_d >= reference:
            errors["stop_loss"] = "must be below the entry price for a buy"
        if side == OrderSide.SELL and sl_d <= reference:
            errors["stop_loss"] = "must be above the entry price for a sell"
    if tp_d is not None and reference:
        if side == OrderSide.BUY and tp_d <= reference:
            errors["take_profit"] = "must be above the entry price for a buy"
        if side == OrderSide.SELL and tp_d >= reference:
            errors["take_profit"] = "must be below the entry price for a sell"
    if errors:
        raise InvalidOrder(_first(errors), fields=errors)
    checked = _Checked(amount_d, price_d, stop_d, trail_d, sl_d, tp_d, reference)
    if check_balance and not reduce_only:
        _check_balance(gateway=gateway, account=account, symbol=symbol, side=side, checked=checked)
    return checked


def _first(errors: dict[str, str]) -> str:
    field, message = next(iter(errors.items()))
    return f"{field}: {message}"


def _assets(symbol: str) -> tuple[str, str]:
    base, _, rest = symbol.partition("/")
    return base, rest.split(":", 1)[0]


def _check_balance(
    *, gateway: ExchangeGateway, account: Account, symbol: str, side: str, checked: _Checked
) -> None:
    if ":" in symbol:
        # Futures margin depends on the leverage, the margin mode and an opposite position the
        # order closes first (a reversal), which the exchange knows: it checks, and a refusal is
        # recorded on the order with its reason (the paper exchange's ``InsufficientFunds``).
        return
    base, quote = _assets(symbol)
    fee = getattr(account, "taker_fee", None) or Decimal("0.001")
    balance = gateway.fetch_balance()
    if side == OrderSide.BUY:
        need = checked.amount * checked.reference * (1 + fee)
        free = balance.get(quote).free
        asset = quote
    else:
        need = checked.amount
        free = balance.get(base).free
        asset = base
    if free < need:
        raise InsufficientFunds(
            f"Insufficient {asset}: this order needs {shown_need(need)}, {free.normalize():f} is available.",
            fields={"amount": "insufficient balance"},
        )


# ---------------------------------------------------------------- placement
def _resolve_account(*, owner, account: Account) -> Account:
    if not isinstance(account, (ExchangeConnection, PaperAccount)) or account.user_id != owner.pk:
        raise NotFound("Account not found.")
    if isinstance(account, ExchangeConnection) and account.deleted_at is not None:
        raise NotFound("Account not found.")
    return account


@events_batched()
@live.tickers_kept()  # checked, reserved and filled at one price
def order_place(
    *,
    owner,
    account: Account,
    symbol: str,
    side: str,
    type: str,
    amount: Decimal,
    price: Decimal | None = None,
    stop_price: Decimal | None = None,
    trailing_percent: Decimal | None = None,
    time_in_force: str = "GTC",
    reduce_only: bool = False,
    client_order_id: str | None = None,
    bot=None,
    stop_loss: Decimal | None = None,
    take_profit: Decimal | None = None,
    gateway: ExchangeGateway | None = None,
) -> Order:
    """Validate, write as pending, send after commit, record the answer; idempotent by client order id.

    ``account`` is the owner's ``ExchangeConnection`` or ``PaperAccount`` (another
    user's is a ``NotFound``). A second call with the same ``client_order_id`` on
    the same account returns the first order without sending anything. With
    ``stop_loss``/``take_profit`` the order is a bracket entry whose legs are
    placed when it fills. ``gateway`` replaces the account's default gateway
    (a replay-priced paper exchange, say). Raises ``InvalidOrder`` (every bad
    field at once), ``InsufficientFunds``, ``Conflict`` (``kill_switch_engaged``: the owner's
    kill switch is on and the order is not reduce-only; nothing is stored) or
    ``RiskLimitBreached`` (a 400; the order is then stored as rejected with the breached
    limits and their numbers).
    """
    account = _resolve_account(owner=owner, account=account)
    if client_order_id:
        existing = Order.objects.for_account(account).filter(client_order_id=client_order_id).first()
        if existing is not None:
            return existing
    if bot is not None and bot.owner_id != owner.pk:
        raise NotFound("Bot not found.")
    # A bot replay's throw-away account simulates past candles: the user's live limits and kill
    # switch, which read today's positions and P&L, are not its business.
    simulated = isinstance(account, PaperAccount) and account.replay_id is not None
    # Reduce-only orders still pass: closing a position is what an emergency stop wants.
    kill_switch = None if reduce_only or simulated else kill_switch_is_on(user_id=owner.pk)
    if kill_switch:
        raise Conflict(
            "The kill switch is on: no new orders are accepted until you release it.",
            code="kill_switch_engaged",
        )
    gateway = gateway or account_gateway(account)
    # The paper exchange lives in this database: its order is written, sent and filled in one
    # transaction (all of it or none), with no commit between. A live exchange is sent to only
    # after the pending order is committed, and so is any order placed inside a caller's transaction.
    inline = isinstance(account, PaperAccount) and not _caller_transaction_open()
    # Inline, the paper exchange's reservation (under the account's lock) is the balance check:
    # its refusal rolls the whole placement back, so an unaffordable order is still never stored,
    # without reading the balances twice. (Futures and reduce-only orders have no check here: the
    # exchange refuses them, and the refusal is recorded on the order.)
    refuse_unaffordable = inline and not reduce_only and ":" not in symbol
    checked = _validate(
        gateway=gateway,
        account=account,
        symbol=symbol,
        side=side,
        type=type,
        amount=amount,
        price=price,
        stop_price=stop_price,
        trailing_percent=trailing_percent,
        time_in_force=time_in_force,
        reduce_only=reduce_only,
        stop_loss=stop_loss,
        take_profit=take_profit,
        check_balance=not refuse_unaffordable,
    )
    breaches = (
        []
        if simulated
        else pretrade.order_check(
            owner_id=owner.pk,
            account_key=f"paper:{account.pk}" if isinstance(account, PaperAccount) else f"live:{account.pk}",
            symbol=symbol,
            side=side,
            amount=checked.amount,
            price=checked.reference,
            reduce_only=reduce_only,
            bot_id=getattr(bot, "pk", None),
            user_timezone=getattr(owner, "timezone", None),
            kill_switch=kill_switch,
        )
    )
    if breaches:
        _reject_for_risk(owner=owner, account=account, bot=bot, symbol=symbol, side=side, type=type,
                         checked=checked, time_in_force=time_in_force, reduce_only=reduce_only,
                         client_order_id=client_order_id, breaches=breaches)  # fmt: skip
    try:
        with transaction.atomic():
            order = Order(
                owner=owner,
                bot=bot,
                exchange=_exchange_of(account),
                symbol=symbol,
                side=side,
                type=type,
                amount=checked.amount,
                price=checked.price,
                stop_price=checked.stop_price,
                trailing_percent=checked.trailing_percent,
                time_in_force=time_in_force,
                reduce_only=reduce_only,
            )
            order.account = account
            if client_order_id:
                order.client_order_id = client_order_id
            order.save()
            _create_legs(order, checked)
            _publish_order(order, "order.created")
            submitted: list[Order | None] = []
            bracket = checked.stop_loss is not None or checked.take_profit is not None
            if inline:
                submitted.append(
                    _submit(order.pk, gateway, account=account, legs=bracket, locked=order,
                            refuse_unaffordable=refuse_unaffordable, new_client_id=not client_order_id)
                )  # fmt: skip
            else:
                # Sent once the order is committed: then the submitted order, as recorded, is the answer.
                transaction.on_commit(
                    lambda: submitted.append(_submit(order.pk, gateway, account=account, legs=bracket))
                )
    except IntegrityError:
        # A concurrent call with the same client order id won the insert: that order is the answer.
        existing = Order.objects.for_account(account).filter(client_order_id=client_order_id).first()
        if existing is None:
            raise
        return existing
    if submitted and submitted[0] is not None:
        return submitted[0]
    order.refresh_from_db()  # inside the caller's transaction: not sent until that commits
    return order


class RiskLimitBreached(ValidationFailed):
    """The order broke a risk limit; it is stored as rejected (``order``) with the limits' numbers."""

    code = "risk_limit"

    def __init__(self, message: str, *, fields: dict[str, Any], order: Order):
        super().__init__(message, fields=fields)
        self.order = order


def _reject_for_risk(*, owner, account: Account, bot, symbol: str, side: str, type: str, checked: _Checked,
                     time_in_force: str, reduce_only: bool, client_order_id: str | None, breaches) -> None:  # fmt: skip
    """Store the order as rejected with the breached limits, then raise ``RiskLimitBreached`` (400)."""
    with transaction.atomic():
        order = Order(
            owner=owner,
            bot=bot,
            exchange=_exchange_of(account),
            symbol=symbol,
            side=side,
            type=type,
            amount=checked.amount,
            price=checked.price,
            stop_price=checked.stop_price,
            trailing_percent=checked.trailing_percent,
            time_in_force=time_in_force,
            reduce_only=reduce_only,
            status=OrderStatus.REJECTED,
            reason=pretrade.rejection_reason(breaches),
        )
        order.account = account
        if client_order_id:
            order.client_order_id = client_order_id
        order.save()
        _publish_order(order, "order.created")
        order_finished.send(sender=Order, order=order)  # born rejected: no transition sends it
        pretrade.order_rejected(
            owner_id=owner.pk, order_id=order.pk, bot_id=getattr(bot, "pk", None), breaches=breaches
        )
    raise RiskLimitBreached(
        breaches[0].message,
        fields={
            "risk": [b.message for b in breaches],
            "order_id": order.pk,
            "limits": [b.as_dict() for b in breaches],
        },
        order=order,
    )


def _create_legs(entry: Order, checked: _Checked) -> None:
    exit_side = OrderSide.SELL if entry.side == OrderSide.BUY else OrderSide.BUY
    common = {
        "owner_id": entry.owner_id,
        "bot_id": entry.bot_id,
        "exchange": entry.exchange,
        "symbol": entry.symbol,
        "side": exit_side,
        "amount": entry.amount,
        "reduce_only": True,
        "parent": entry,
        "held": True,
        "connection_id": entry.connection_id,
        "paper_account_id": entry.paper_account_id,
    }
    if checked.stop_loss is not None:
        Order.objects.create(
            role=Order.Role.STOP_LOSS, type=OrderType.STOP_MARKET, stop_price=checked.stop_loss, **common
        )
    if checked.take_profit is not None:
        Order.objects.create(
            role=Order.Role.TAKE_PROFIT, type=OrderType.LIMIT, price=checked.take_profit, **common
        )


def _request(order: Order, *, as_market: bool = False) -> OrderRequest:
    return OrderRequest(
        symbol=order.symbol,
        side=order.side,
        type=OrderType.MARKET if as_market else order.type,
        amount=order.amount - order.filled,
        price=None if as_market else order.price,
        stop_price=None if as_market else order.stop_price,
        client_order_id=order.client_order_id,
        time_in_force=order.time_in_force,
        trailing_percent=None if as_market else order.trailing_percent,
        reduce_only=order.reduce_only and ":" in order.symbol,  # spot has no reduce-only flag
    )


def _caller_transaction_open() -> bool:
    """Whether the caller holds a transaction of its own (the atomic blocks of Django's
    ``TestCase``, which never commit, are not one)."""
    connection = transaction.get_connection()
    return connection.in_atomic_block and any(
        not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks
    )


def _submit(
    order_id: int,
    gateway: ExchangeGateway | None = None,
    *,
    as_market: bool = False,
    account: Account | None = None,
    legs: bool = True,
    locked: Order | None = None,
    refuse_unaffordable: bool = False,
    new_client_id: bool = False,
) -> Order | None:
    """Send a pending order (once: under its row lock, only while it is pending and unsent); the order as stored.

    ``account``: the order's account as the caller already holds it (not read again).
    ``legs=False``: the caller placed it without bracket legs, so they are not looked for.
    ``locked``: the order as the caller wrote it in the transaction it runs in (not read again).
    ``refuse_unaffordable``: the exchange's ``InsufficientFunds`` is raised (the caller's
    transaction rolls back), not recorded on the order.
    ``new_client_id``: the order's client id was generated as it was written in this transaction,
    so the exchange holds no order under it (``OrderRequest.new_client_id``).
    """
    # Inline (``locked``), the caller's transaction is all or nothing already: no savepoint.
    with transaction.atomic(savepoint=locked is None):
        order = locked or Order.objects.select_for_update().filter(pk=order_id).first()
        if order is None or order.status != OrderStatus.PENDING or order.exchange_order_id:
            return order
        if account is not None:
            order.account = account
        if not legs:
            # As if read with prefetch_related("legs"): the bracket rules and the answer's
            # ``legs`` see none without asking the database.
            order._prefetched_objects_cache = {"legs": _prefetched(order.legs.all(), [])}
        gateway = gateway or account_gateway(_account_of(order))
        request = _request(order, as_market=as_market)
        if new_client_id:
            request = replace(request, new_client_id=True)
        if refuse_unaffordable:  # a refusal rolls the placement back whole (re-raised below)
            request = replace(request, in_caller_transaction=True)
        try:
            remote = gateway.create_order(request)
        except (InvalidOrder, InsufficientFunds) as exc:
            if refuse_unaffordable and isinstance(exc, InsufficientFunds):
                raise
            transition(order, OrderStatus.REJECTED, reason=exc.message)
            order.held = False
            order.save()
            _publish_order(order)
            _cancel_legs(order, reason="entry rejected")
            return order
        except ExchangeError as exc:
            # Unknown outcome (timeout, outage): stay pending; order_sync asks by client order id.
            logger.warning("order %s: send failed, will sync: %s", order.pk, exc.message)
            return order
        order.held = False
        _record(order, remote, gateway, fresh=locked is not None)
        return order


def _record(order: Order, remote: RemoteOrder, gateway: ExchangeGateway, *, fresh: bool = False) -> None:
    """Apply the exchange's view of ``order`` (locked by the caller): status, fills, position, legs.

    ``fresh``: the order was written in this transaction, so it has no fills but the ones recorded
    here (they are then its fills as prefetched: the answer does not read them again).
    """
    before = (order.status, order.filled)
    order.exchange_order_id = order.exchange_order_id or str(remote.id)
    status = remote.status
    if status == OrderStatus.PENDING:
        status = OrderStatus.OPEN
    if remote.filled and remote.filled < order.amount and status == OrderStatus.OPEN:
        status = OrderStatus.PARTIALLY_FILLED
    recorded = [] if fresh else list(order.fills.values_list("exchange_trade_id", "amount", "fee"))
    new_fills = _record_fills(order, remote, gateway, recorded=recorded)
    if fresh:
        for fill in new_fills:  # as the database reads them back
            fill.price, fill.amount, fill.fee = map(as_stored, (fill.price, fill.amount, fill.fee))
        fills = _prefetched(order.fills.all(), sorted(new_fills, key=lambda fill: (fill.timestamp, fill.pk)))
        order._prefetched_objects_cache = {**getattr(order, "_prefetched_objects_cache", {}), "fills": fills}
    transition(order, status, reason=remote.reason if status not in Order.OPEN_STATUSES else "")
    order.filled = min(max(order.filled, remote.filled or ZERO), order.amount)
    if remote.average:
        order.average_price = remote.average
    order.fee = _fills_fee(order, recorded, new_fills, fresh=fresh) or remote.fee or ZERO
    order.fee_asset = order.fee_asset or remote.fee_asset or ""
    # Fresh, the rest of the row is as this transaction just wrote it.
    order.save(update_fields=ORDER_ANSWER_FIELDS if fresh else None)
    if (order.status, order.filled) != before or new_fills:
        _publish_order(order)
    for fill in new_fills:
        _apply_to_position(order, fill)
    if new_fills and ":" in order.symbol:
        # Futures: leverage, margin mode and liquidation price are the exchange's to tell.
        _sync_positions(_account_of(order), gateway)
    _after_status(order, gateway)


#: What sending an order and recording the exchange's answer change on it (``_submit``, ``_record``).
ORDER_ANSWER_FIELDS = [
    "held",
    "exchange_order_id",
    "status",
    "reason",
    "filled",
    "average_price",
    "fee",
    "fee_asset",
    "updated_at",
]


def _fills_fee(
    order: Order, recorded: list[tuple[str, Decimal, Decimal]], new_fills: list[Fill], *, fresh: bool
) -> Decimal | None:
    """The fee of ``order``'s fills as the database holds them (``None``: it has none)."""
    if not new_fills:
        return sum((fee for _id, _amount, fee in recorded), ZERO) if recorded else None
    if fresh and len(new_fills) == 1 and connection.vendor != "sqlite":
        return new_fills[0].fee  # the order's one fill, its fee as stored (``_record``)
    # Summed again by the database, as stored: a fee is rounded to the column on insert
    # (and is a binary float on SQLite), so adding the new fees here could differ.
    return order.fills.aggregate(fee=Sum("fee"))["fee"]


def _record_fills(
    order: Order,
    remote: RemoteOrder,
    gateway: ExchangeGateway,
    *,
    recorded: list[tuple[str, Decimal, Decimal]],
) -> list[Fill]:
    """New fills of ``order``: the exchange's trades for it, or one fill for any filled amount not yet recorded.

    ``recorded``: (exchange trade id, amount, fee) of the fills it already has.
    """
    known = {trade_id for trade_id, _amount, _fee in recorded if trade_id}
    in_fills = sum((amount for _id, amount, _fee in recorded), ZERO)
    if (remote.filled or ZERO) <= in_fills:
        return []
    account = _account_of(order)
    created: list[Fill] = []
    by_order = getattr(gateway, "fetch_order_trades", None)  # the paper exchange: this order's only
    try:
        if by_order is not None:
            trades = by_order(str(remote.id), order.symbol)
        else:
            trades = [t for t in gateway.fetch_my_trades(order.symbol) if t.order_id == str(remote.id)]
    except ExchangeError:
        trades = []
    unknown = [str(t.id) for t in trades if str(t.id) not in known]
    if unknown and by_order is None:
        # An exchange's trade ids are unique per market, not per account: one recorded for another
        # order of the account is not this order's to record again (the account's ids are unique).
        # A paper trade's id is its row's, and it belongs to this order alone.
        known |= set(
            Fill.objects.filter(**account_filter(account), exchange_trade_id__in=unknown).values_list(
                "exchange_trade_id", flat=True
            )
        )
    for trade in trades:
        if str(trade.id) in known:
            continue
        fill = Fill(
            order=order,
            exchange_trade_id=str(trade.id),
            price=trade.price,
            amount=trade.amount,
            fee=trade.fee or ZERO,
            fee_asset=trade.fee_asset or "",
            is_maker=trade.maker,
            timestamp=_when(trade.timestamp),
        )
        fill.account = account
        fill.save()
        created.append(fill)
        in_fills += trade.amount
    missing = (remote.filled or ZERO) - in_fills
    if missing > 0 and (remote.average or order.price):
        # The exchange reported a fill without its trade (no trade history access): record the difference.
        fill = Fill(
            order=order,
            price=remote.average or order.price,
            amount=missing,
            fee=ZERO,
            fee_asset=remote.fee_asset or "",
            timestamp=_when(remote.timestamp),
        )
        fill.account = account
        fill.save()
        created.append(fill)
    for fill in created:
        publish_event(
            order.owner_id,
            "fill.created",
            {
                "id": fill.pk,
                "order_id": order.pk,
                "client_order_id": order.client_order_id,
                "bot_id": order.bot_id,
                "symbol": order.symbol,
                "side": order.side,
                "price": str(fill.price),
                "amount": str(fill.amount),
                "cost": str(quantize_amount(fill.cost)),
                "fee": str(fill.fee),
                "fee_asset": fill.fee_asset,
            },
            on_commit=True,
        )
    return created


def _when(ms: int | None) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else timezone.now()


def _apply_to_position(order: Order, fill: Fill) -> Position:
    """Move the account's position in the market by one fill (average entry, realized P&L)."""
    account = _account_of(order)
    found = _locked_position(order.symbol, order.paper_account_id, order.connection_id)
    position = (
        found[0]
        if found
        else Position.objects.select_for_update().get_or_create(
            symbol=order.symbol, **account_filter(account), defaults={"owner_id": order.owner_id}
        )[0]
    )
    signed = position.size if position.side == Position.Side.LONG else -position.size
    delta = fill.amount if order.side == OrderSide.BUY else -fill.amount
    if signed == 0 or (signed > 0) == (delta > 0):  # opening or adding
        entry = position.average_entry or ZERO
        new_size = abs(signed + delta)
        position.average_entry = quantize_amount(
            (abs(signed) * entry + abs(delta) * fill.price) / new_size, ROUND_HALF_EVEN
        )
    else:  # reducing, closing or flipping
        closed = min(abs(delta), abs(signed))
        direction = 1 if signed > 0 else -1
        position.realized_pnl += quantize_amount(closed * (fill.price - position.average_entry) * direction)
        if abs(delta) > abs(signed):
            position.average_entry = fill.price
        elif abs(delta) == abs(signed):
            position.average_entry = None
    position.realized_pnl -= fill.fee if fill.fee_asset == _assets(order.symbol)[1] else ZERO
    signed += delta
    position.size = abs(signed)
    position.side = (
        Position.Side.FLAT if signed == 0 else (Position.Side.LONG if signed > 0 else Position.Side.SHORT)
    )
    position.mark_price = fill.price
    _mark(position)
    if Order.owner.is_cached(order):  # the owner as the caller holds it (risk tracking reads its time zone)
        position.owner = order.owner
    position.save(update_fields=POSITION_FILL_FIELDS)
    _publish_position(position)
    return position


#: What a fill changes on its position (the rest is the account's and the exchange's to set).
POSITION_FILL_FIELDS = [
    "side",
    "size",
    "average_entry",
    "realized_pnl",
    "mark_price",
    "unrealized_pnl",
    "updated_at",
]


@compiled  # asked by every fill (apps/core/compiled.py)
def _locked_position(symbol: str, paper_account_id: int | None, connection_id: int | None):
    account = {"paper_account_id": paper_account_id} if paper_account_id else {"connection_id": connection_id}
    return Position.objects.select_for_update().filter(symbol=symbol, **account)


def _mark(position: Position) -> None:
    if position.size and position.average_entry is not None and position.mark_price is not None:
        direction = 1 if position.side == Position.Side.LONG else -1
        position.unrealized_pnl = quantize_amount(
            position.size * (position.mark_price - position.average_entry) * direction
        )
    else:
        position.unrealized_pnl = ZERO


def positions_mark() -> int:
    """Mark every open position to the current price, so its unrealized P&L follows the market
    between fills (a beat job); publish ``position.updated`` for each one that moved.

    Prices come from market data (``live.ticker``: the exchange live, the replay feed offline);
    a market without a price is left as it is until the next run. Replays' accounts are skipped.
    """
    open_positions = Position.objects.filter(size__gt=0).exclude(paper_account__replay_id__isnull=False)
    prices: dict[tuple[str, str], Decimal | None] = {}
    moved = 0
    for pk, symbol, paper_exchange, live_exchange in open_positions.values_list(
        "pk", "symbol", "paper_account__exchange", "connection__exchange"
    ):
        key = (paper_exchange or live_exchange, symbol)
        if key not in prices:
            try:
                prices[key] = Decimal(str(live.ticker(exchange=key[0], symbol=symbol)["last"]))
            except Exception as exc:  # no price for this market right now: try again next run
                logger.info("no price to mark %s on %s: %r", symbol, key[0], exc)
                prices[key] = None
        price = prices[key]
        if price is None:
            continue
        with transaction.atomic():
            position = Position.objects.select_for_update().filter(pk=pk, size__gt=0).first()
            if position is None or position.mark_price == price:
                continue
            position.mark_price = price
            _mark(position)
            position.save(update_fields=["mark_price", "unrealized_pnl", "updated_at"])
        _publish_position(position)
        moved += 1
    return moved


# ------------------------------------------------------------------ brackets
def _after_status(order: Order, gateway: ExchangeGateway) -> None:
    """Bracket rules after ``order``'s status changed: arm legs on entry fill, one-cancels-other."""
    if order.role == Order.Role.ENTRY:
        if order.status == OrderStatus.FILLED:
            legs = _held_legs(order)
            if getattr(gateway, "supports_oco", False) and len(legs) == 2:
                leg_ids = [leg.pk for leg in legs]
                transaction.on_commit(lambda: _submit_oco(leg_ids, gateway))
                return
            for leg in legs:
                if leg.role == Order.Role.TAKE_PROFIT:
                    leg_id = leg.pk
                    transaction.on_commit(lambda leg_id=leg_id: _submit(leg_id, gateway))
        elif (
            order.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)
            and not order.filled
        ):
            _cancel_legs(order, reason=f"entry {order.status}")
        return
    if order.status == OrderStatus.FILLED and order.parent_id:
        for sibling in (
            Order.objects.select_for_update().filter(parent_id=order.parent_id).exclude(pk=order.pk).open()
        ):
            _cancel_locked(sibling, gateway, reason=f"{order.get_role_display()} filled")


def _held_legs(order: Order) -> list[Order]:
    """The entry's legs still held for it (pending), by id; those prefetched if they were (no query)."""
    prefetched = getattr(order, "_prefetched_objects_cache", {}).get("legs")
    if prefetched is None:
        return list(order.legs.filter(status=OrderStatus.PENDING, held=True).order_by("pk"))
    return sorted(
        (leg for leg in prefetched if leg.status == OrderStatus.PENDING and leg.held), key=lambda leg: leg.pk
    )


def _prefetched(queryset: QuerySet, rows: list) -> QuerySet:
    """``queryset`` holding ``rows`` as ``prefetch_related`` leaves it: read without a query."""
    queryset._result_cache = rows
    queryset._prefetch_done = True
    return queryset


def _submit_oco(leg_ids: list[int], gateway: ExchangeGateway) -> None:
    """Place a filled entry's two held legs as one native OCO pair (once: under their row locks).

    An exchange that refuses the pair (an order it would not take alone either,
    say) leaves the legs to the emulation: the take-profit is sent on its own and
    the stop-loss stays held. An unknown outcome keeps both held; ``order_sync``
    asks again (the pair's client order ids make that idempotent).
    """
    fallback = None
    with transaction.atomic():
        legs = list(Order.objects.select_for_update().filter(pk__in=leg_ids).order_by("pk"))
        if len(legs) != 2 or any(
            leg.status != OrderStatus.PENDING or not leg.held or leg.exchange_order_id for leg in legs
        ):
            return
        try:
            remotes = gateway.create_oco(*(_request(leg) for leg in legs))
        except (InvalidOrder, InsufficientFunds) as exc:
            logger.info("bracket legs %s: no native OCO (%s), emulated", leg_ids, exc.message)
            fallback = next((leg.pk for leg in legs if leg.role == Order.Role.TAKE_PROFIT), None)
        except ExchangeError as exc:
            logger.warning("bracket legs %s: OCO send failed, will sync: %s", leg_ids, exc.message)
            return
        else:
            by_client_id = {remote.client_order_id: remote for remote in remotes}
            for leg in legs:
                remote = by_client_id.get(leg.client_order_id)
                if remote is None:  # not part of what the exchange holds: left to the emulation
                    continue
                leg.held = False
                _record(leg, remote, gateway)
    if fallback is not None:
        _submit(fallback, gateway)


def _send_held_oco_pairs(account: Account, gateway: ExchangeGateway) -> int:
    """Native OCO: place the held leg pairs of filled entries whose placement was lost (a crash, an outage)."""
    if not getattr(gateway, "supports_oco", False):
        return 0
    pairs: dict[int, list[int]] = {}
    held = Order.objects.for_account(account).filter(
        held=True, status=OrderStatus.PENDING, parent__status=OrderStatus.FILLED
    )
    for leg_id, parent_id in held.order_by("pk").values_list("pk", "parent_id"):
        pairs.setdefault(parent_id, []).append(leg_id)
    sent = 0
    for leg_ids in pairs.values():
        if len(leg_ids) == 2:
            _submit_oco(leg_ids, gateway)
            sent += 1
    return sent


def _cancel_legs(entry: Order, *, reason: str) -> None:
    for leg in Order.objects.select_for_update().filter(parent=entry).open():
        transition(leg, OrderStatus.CANCELLED, reason=reason)
        leg.held = False
        leg.save()
        _publish_order(leg)


def _fire_held_stops(account: Account, gateway: ExchangeGateway) -> int:
    """Emulated stop-loss legs: when the price crosses the stop, cancel the sibling and sell at market."""
    fired = 0
    held = Order.objects.for_account(account).filter(
        held=True, status=OrderStatus.PENDING, role=Order.Role.STOP_LOSS, parent__status=OrderStatus.FILLED
    )
    prices: dict[str, Decimal | None] = {}
    for leg in held.order_by("pk"):
        if leg.symbol not in prices:
            prices[leg.symbol] = gateway.fetch_ticker(leg.symbol).last
        last = prices[leg.symbol]
        if last is None:
            continue
        hit = last <= leg.stop_price if leg.side == OrderSide.SELL else last >= leg.stop_price
        if not hit:
            continue
        with transaction.atomic():
            for sibling in (
                Order.objects.select_for_update().filter(parent_id=leg.parent_id).exclude(pk=leg.pk).open()
            ):
                _cancel_locked(sibling, gateway, reason="stop-loss triggered")
            Order.objects.filter(pk=leg.pk).update(held=False)
        _submit(leg.pk, gateway, as_market=True)
        fired += 1
    return fired


# -------------------------------------------------------------- cancelling
def _cancel_locked(
    order: Order, gateway: ExchangeGateway | None, *, reason: str = "cancelled by user"
) -> Order:
    if order.status not in Order.OPEN_STATUSES:
        raise Conflict(
            f"The order is {order.get_status_display().lower()}; there is nothing to cancel.",
            code="order_finished",
        )
    if order.held:  # only the platform knows it
        transition(order, OrderStatus.CANCELLED, reason=reason)
        order.held = False
        order.save()
        _publish_order(order)
        return order
    gateway = gateway or account_gateway(_account_of(order))
    try:
        remote = gateway.cancel_order(order.exchange_order_id or order.client_order_id, order.symbol)
    except OrderNotFound:
        remote = _remote_by_client_id(gateway, order)
        if remote is None:  # never reached the exchange: nothing to cancel there
            transition(order, OrderStatus.CANCELLED, reason=reason)
            order.save()
            _publish_order(order)
            _cancel_legs(order, reason="entry cancelled")
            return order
        _record(order, remote, gateway)
        if order.status == OrderStatus.FILLED:
            raise Conflict(
                "The order was filled before it could be cancelled.", code="already_filled"
            ) from None
        return order
    if remote.status in Order.OPEN_STATUSES:  # an exchange that acknowledges before it cancels
        remote = replace(remote, status=OrderStatus.CANCELLED)
    if not remote.reason:
        remote = replace(remote, reason=reason)
    _record(order, remote, gateway)
    if order.parent_id and getattr(gateway, "supports_oco", False):
        _record_oco_sibling(order, gateway)
    return order


def _record_oco_sibling(leg: Order, gateway: ExchangeGateway) -> None:
    """A native OCO leg was cancelled: the exchange cancelled its sibling too, record that now."""
    siblings = (
        Order.objects.select_for_update()
        .filter(parent_id=leg.parent_id, held=False)
        .exclude(pk=leg.pk)
        .exclude(exchange_order_id="")
        .open()
    )
    for sibling in siblings.order_by("pk"):
        try:
            remote = gateway.fetch_order(sibling.exchange_order_id, sibling.symbol)
        except ExchangeError as exc:  # order_sync records it later
            logger.info("order %s: not synced after its OCO sibling's cancel: %s", sibling.pk, exc.message)
            continue
        _record(sibling, remote, gateway)


@events_batched()
def order_cancel(*, order: Order, gateway: ExchangeGateway | None = None) -> Order:
    """Cancel one open order at its exchange (a held bracket leg only on the platform).

    A finished order is a ``Conflict`` (409); an order that filled meanwhile is
    recorded as filled and is a ``Conflict`` too. Cancelling a bracket entry
    without fills cancels its legs.
    """
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        _cancel_locked(locked, gateway)
    locked.refresh_from_db()
    return locked


def order_cancel_all(*, owner, account: Account | None = None, bot=None, symbol: str | None = None) -> int:
    """Cancel the owner's open orders (of one account, bot or symbol); returns how many were cancelled."""
    orders = Order.objects.filter(owner=owner).open()
    if account is not None:
        orders = orders.for_account(_resolve_account(owner=owner, account=account))
    if bot is not None:
        orders = orders.filter(bot=bot)
    if symbol:
        orders = orders.filter(symbol=symbol)
    count = 0
    # One at a time under each row's lock; a leg its entry already cancelled is a Conflict and skipped.
    for order in orders.order_by("pk"):
        try:
            cancelled = order_cancel(order=order)
        except (Conflict, ExchangeError) as exc:
            logger.info("order %s not cancelled: %s", order.pk, exc)
            continue
        except Order.DoesNotExist:
            continue
        count += cancelled.status == OrderStatus.CANCELLED
    return count


# ------------------------------------------------------------------- syncing
def _remote_by_client_id(gateway: ExchangeGateway, order: Order) -> RemoteOrder | None:
    by_client = getattr(gateway, "fetch_order_by_client_id", None)
    if by_client is not None:
        return by_client(order.client_order_id, order.symbol)
    try:
        return gateway.fetch_order(order.client_order_id, order.symbol)
    except OrderNotFound:
        return None


@dataclass
class SyncResult:
    checked: int = 0
    changed: int = 0
    resent: int = 0
    fired: int = 0


@events_batched()
def order_sync(*, account: Account, gateway: ExchangeGateway | None = None) -> SyncResult:
    """Reconcile the account's open orders, fills and positions with the exchange, by client order id.

    An order still pending whose send was lost is looked up by its client order
    id and sent only if the exchange has never seen it; a filled entry's held
    legs are placed as their native OCO pair where the gateway has one, held
    stop-loss legs fire when the price crosses them; futures positions are read
    from the exchange.
    """
    gateway = gateway or account_gateway(account)
    result = SyncResult()
    _send_held_oco_pairs(account, gateway)
    result.fired = _fire_held_stops(account, gateway)
    for order_id in (
        Order.objects.for_account(account)
        .open()
        .filter(held=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    ):
        with transaction.atomic():
            order = Order.objects.select_for_update().filter(pk=order_id).first()
            if order is None or not order.is_open or order.held:
                continue
            result.checked += 1
            before = (order.status, order.filled)
            if order.exchange_order_id:
                try:
                    remote = gateway.fetch_order(order.exchange_order_id, order.symbol)
                except OrderNotFound:
                    remote = _remote_by_client_id(gateway, order)
            else:
                remote = _remote_by_client_id(gateway, order)
            if remote is None:
                if not order.exchange_order_id:
                    transaction.on_commit(lambda pk=order.pk: _submit(pk, gateway))
                    result.resent += 1
                continue
            _record(order, remote, gateway)
            result.changed += (order.status, order.filled) != before
    _sync_positions(account, gateway)
    return result


def _sync_positions(account: Account, gateway: ExchangeGateway) -> None:
    """Futures positions as the exchange reports them; spot positions get a fresh mark price."""
    try:
        remote_positions = gateway.fetch_positions()
    except ExchangeError as exc:
        logger.info("positions not synced for %s: %s", account, exc.message)
        return
    with transaction.atomic():
        # A futures position the paper exchange no longer reports was closed there (a liquidation,
        # say). Only paper: a live gateway without ``fetchPositions`` reports none at all.
        gone = (
            Position.objects.select_for_update()
            .filter(symbol__contains=":", **account_filter(account))
            .exclude(size=0)
            .exclude(symbol__in=[remote.symbol for remote in remote_positions])
        )
        for position in gone.order_by("pk") if isinstance(account, PaperAccount) else ():
            position.side = Position.Side.FLAT
            position.size = ZERO
            position.unrealized_pnl = ZERO
            position.liquidation_price = None
            position.save()
            _publish_position(position)
        for remote in remote_positions:
            position, _ = Position.objects.select_for_update().get_or_create(
                symbol=remote.symbol, **account_filter(account), defaults={"owner_id": _owner_id(account)}
            )
            position.side = remote.side if remote.contracts else Position.Side.FLAT
            position.size = abs(remote.contracts)
            position.average_entry = remote.entry_price
            position.mark_price = remote.mark_price
            position.unrealized_pnl = remote.unrealized_pnl or ZERO
            position.leverage = remote.leverage or Decimal("1")
            position.margin_mode = remote.margin_mode or ""
            position.liquidation_price = remote.liquidation_price
            position.save()
            _publish_position(position)


def order_sync_open_accounts() -> int:
    """``order_sync`` every account with open orders (the beat job); one failing account does not stop the rest."""
    open_orders = Order.objects.open()
    synced = 0
    paper_ids = set(open_orders.exclude(paper_account=None).values_list("paper_account_id", flat=True))
    live_ids = set(open_orders.exclude(connection=None).values_list("connection_id", flat=True))
    accounts: list[Account] = [
        # A bot replay's account is synced by the replay itself, on its own clock.
        *PaperAccount.objects.filter(pk__in=paper_ids, replay_id__isnull=True).order_by("pk"),
        *ExchangeConnection.objects.alive().filter(pk__in=live_ids).order_by("pk"),
    ]
    for account in accounts:
        try:
            order_sync(account=account)
            synced += 1
        except ExchangeError as exc:
            logger.warning("order sync failed for %s: %s", account, exc.message)
    return synced


# ----------------------------------------------------------------- positions
def position_close(*, owner, position: Position, gateway: ExchangeGateway | None = None) -> Order:
    """Close the position with a reduce-only market order on the opposite side."""
    if position.owner_id != owner.pk:
        raise NotFound("Position not found.")
    if not position.size:
        raise Conflict("The position is already flat.", code="position_flat")
    side = OrderSide.SELL if position.side == Position.Side.LONG else OrderSide.BUY
    return order_place(
        owner=owner,
        account=_account_of(position),
        symbol=position.symbol,
        side=side,
        type=OrderType.MARKET,
        amount=position.size,
        reduce_only=True,
        gateway=gateway,
    )
