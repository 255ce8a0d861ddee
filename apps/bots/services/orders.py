"""The bot's way into the orders app: every order a bot places or cancels goes through
``apps.orders.services`` (``order_place``, ``order_cancel``, ``order_cancel_all``), so there is
one order path with its validation, risk check and client order ids.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.bots.models import Bot
from apps.exchanges.gateway.base import ExchangeGateway
from apps.orders import services as orders_services


def bot_place_order(
    *,
    bot: Bot,
    decision: dict[str, Any],
    client_order_id: str,
    account: Any = None,
    gateway: ExchangeGateway | None = None,
):
    """Place one decision of the strategy through ``order_place`` (idempotent by client order id).

    ``account`` and ``gateway`` replace the bot's own (a replay trades on its own paper
    account with replay prices).
    """
    from apps.bots.services.accounts import bot_account, bot_gateway

    gateway = gateway or bot_gateway(bot)
    return orders_services.order_place(
        owner=bot.owner,
        account=account or bot_account(bot),
        symbol=bot.symbol,
        client_order_id=client_order_id,
        bot=bot,
        gateway=gateway,
        **_on_market_steps(bot, decision, gateway),
    )


def _on_market_steps(bot: Bot, decision: dict[str, Any], gateway: ExchangeGateway) -> dict[str, Any]:
    """The strategy sizes in floats; the exchange takes its own steps: the amount is rounded
    down to the amount step (never more than the strategy asked), prices to the nearest tick."""
    from apps.exchanges.gateway import InvalidOrder

    try:
        market = gateway.market(bot.symbol)
    except InvalidOrder:  # the paper exchange trades markets it has prices for, catalogued or not
        return dict(decision)
    out = dict(decision)
    if market.amount_step and out.get("amount") is not None:
        amount = Decimal(str(out["amount"]))
        out["amount"] = (amount // market.amount_step) * market.amount_step
    if market.price_step:
        for key in ("price", "stop_price", "stop_loss", "take_profit"):
            if out.get(key) is not None:
                price = Decimal(str(out[key]))
                out[key] = (price / market.price_step).quantize(Decimal(1)) * market.price_step
    return out


def bot_cancel_order(*, bot: Bot, order_id: str) -> Any:
    """Cancel the one open order of the bot that its strategy knows as ``order_id``.

    That is the id derived from the client order id for the strategy's own orders,
    the exchange's id for any other; ``None`` when no such order is open any more (it
    filled or was cancelled meanwhile: its fill, if any, is reported on the next tick).
    """
    from apps.bots.services.strategy_state import local_order_id
    from apps.core.errors import Conflict
    from apps.orders.models import Order

    for order in Order.objects.filter(bot=bot).open().order_by("pk"):
        local = local_order_id(order.client_order_id)
        if (str(local) if local is not None else order.exchange_order_id) != order_id:
            continue
        try:
            return orders_services.order_cancel(order=order)
        except Conflict:
            return None
    return None


def bot_cancel_orders(*, bot: Bot) -> Any:
    """Cancel every open order of the bot."""
    from apps.bots.services.accounts import bot_account

    return orders_services.order_cancel_all(owner=bot.owner, account=bot_account(bot), bot=bot)


def bot_close_position(*, bot: Bot) -> Any:
    """A reduce-only market order for the bot's whole position, long or short (nothing when flat)."""
    from apps.bots.services.accounts import bot_assets, bot_gateway

    gateway = bot_gateway(bot)
    if bot.is_futures:
        from apps.bots.services.broker import futures_state

        size = futures_state(gateway, bot.symbol, leverage=bot.leverage, margin_mode=bot.margin_mode).size
    else:
        size = gateway.fetch_balance().get(bot_assets(bot)[0]).total
    if not size or (size < 0 and not bot.is_futures):
        return None
    side = "sell" if size > 0 else "buy"
    decision = {"side": side, "type": "market", "amount": abs(Decimal(size)), "reduce_only": True}
    return bot_place_order(
        bot=bot, decision=decision, client_order_id=f"bot{bot.pk}-close-{bot.updated_at:%s}"
    )
