"""Reads for orders, fills and positions, always scoped to their owner."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet, prefetch_related_objects

from apps.core.errors import NotFound, ValidationFailed
from apps.exchanges.models import ExchangeConnection, PaperAccount
from apps.orders.models import Fill, Order, Position


def order_list(*, user) -> QuerySet[Order]:
    """The user's orders, newest first."""
    return Order.objects.filter(owner=user)


def _fills() -> Prefetch:
    return Prefetch("fills", queryset=Fill.objects.order_by("timestamp", "id"))


def order_get(*, user, pk: int | str) -> Order:
    """One of the user's orders with its fills; another user's is a 404."""
    order = None
    if str(pk).isdigit():
        order = order_list(user=user).prefetch_related(_fills()).filter(pk=pk).first()
    if order is None:
        raise NotFound("Order not found.")
    return order


def order_detail(*, user, order: Order) -> Order:
    """``order`` as just returned by a service (read after its commit) with its fills and legs loaded.

    What ``order_get`` would return, without reading the order a second time; another user's is a 404.
    """
    if order.owner_id != user.pk:
        raise NotFound("Order not found.")
    if not {"fills", "legs"} <= getattr(order, "_prefetched_objects_cache", {}).keys():
        prefetch_related_objects([order], _fills(), "legs")
    return order


def fill_list(*, user) -> QuerySet[Fill]:
    """The user's trades (fills of their orders), newest first."""
    return Fill.objects.filter(order__owner=user).select_related("order").order_by("-timestamp", "-id")


def position_list(*, user) -> QuerySet[Position]:
    """The user's positions in every account."""
    return Position.objects.filter(owner=user).order_by("symbol", "id")


def position_get(*, user, pk: int | str) -> Position:
    position = position_list(user=user).filter(pk=pk).first() if str(pk).isdigit() else None
    if position is None:
        raise NotFound("Position not found.")
    return position


def account_get(*, user, paper_account: int | None = None, connection: int | None = None):
    """The account an order goes to: a connection, a paper account, or (neither given) the user's paper account.

    Another user's (or a deleted) account is a 404.
    """
    if paper_account is not None and connection is not None:
        raise ValidationFailed(
            "Give a paper account or a connection, not both.",
            fields={"paper_account": "not with connection", "connection": "not with paper_account"},
        )
    if connection is not None:
        account = ExchangeConnection.objects.alive().filter(user=user, pk=connection).first()
        if account is None:
            raise NotFound("Connection not found.")
        return account
    if paper_account is not None:
        account = PaperAccount.objects.filter(user=user, pk=paper_account).first()
        if account is None:
            raise NotFound("Paper account not found.")
        return account
    from apps.exchanges.services import paper_account_get_or_create

    return paper_account_get_or_create(user=user)


def order_bot_get(*, user, pk: int):
    """The user's bot an order is placed for (through the model reference: bots sits above orders)."""
    bot_model = Order._meta.get_field("bot").related_model
    bot = bot_model.objects.filter(owner=user, pk=pk).first()
    if bot is None:
        raise NotFound("Bot not found.")
    return bot


def order_account_choices(*, user) -> list[tuple[str, str]]:
    """``(value, label)`` of the user's accounts for the ``account`` filter (``paper:<id>``, ``connection:<id>``)."""
    choices = [
        (f"paper:{a.pk}", f"Paper{f' (bot {a.bot_id})' if a.bot_id else ''} · {a.exchange}")
        for a in PaperAccount.objects.filter(user=user).order_by("bot_id", "id")
    ]
    choices += [
        (f"connection:{c.pk}", f"{c.label} ({c.exchange}, live)")
        for c in ExchangeConnection.objects.alive().filter(user=user).order_by("label")
    ]
    return choices


def order_bot_choices(*, user) -> list[tuple[int, str]]:
    """``(id, name)`` of the user's bots, for the ``bot`` filter."""
    bot_model = Order._meta.get_field("bot").related_model
    return list(bot_model.objects.filter(owner=user).order_by("name").values_list("pk", "name"))


def ticket_markets(*, exchange: str) -> list[dict]:
    """The spot markets of ``exchange`` the order ticket offers, with their precision and limits."""
    from apps.marketdata.models import Market

    rows = Market.objects.filter(exchange__slug=exchange, type="spot", active=True).order_by("symbol")
    return [
        {
            "symbol": m.symbol,
            "base": m.base,
            "quote": m.quote,
            "amount_step": None if m.precision_amount is None else f"{m.precision_amount.normalize():f}",
            "price_step": None if m.precision_price is None else f"{m.precision_price.normalize():f}",
            "min_amount": None if m.min_amount is None else f"{m.min_amount.normalize():f}",
            "min_cost": None if m.min_notional is None else f"{m.min_notional.normalize():f}",
            "taker_fee": f"{m.taker_fee.normalize():f}",
            "maker_fee": f"{m.maker_fee.normalize():f}",
        }
        for m in rows
    ]
