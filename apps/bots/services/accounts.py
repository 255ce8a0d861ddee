"""Where a bot trades: its own paper account, or its live connection, as a gateway."""

from __future__ import annotations

from apps.bots.models import Bot
from apps.exchanges.gateway.base import ExchangeGateway
from apps.exchanges.gateway.paper import split_symbol
from apps.exchanges.models import PaperAccount


def bot_assets(bot: Bot) -> tuple[str, str]:
    """``(base, quote)`` of the bot's market; a futures market settles in its quote asset."""
    return split_symbol(bot.symbol, futures=bot.is_futures)


def _market_type(bot: Bot) -> str:
    return PaperAccount.MarketType.FUTURES if bot.is_futures else PaperAccount.MarketType.SPOT


def bot_paper_account(*, bot: Bot) -> PaperAccount:
    """The bot's own paper account, created holding its allocated capital in the quote currency.

    One account per bot keeps its balances, position and P&L apart from the
    owner's manual paper trading and from other bots. A futures bot's account is a
    futures account with the bot's leverage and margin mode set on its market.
    """
    from apps.exchanges.services import paper_account_get_or_create, paper_account_set_balances

    existed = PaperAccount.objects.filter(user_id=bot.owner_id, bot_id=bot.id, replay_id=None).exists()
    account = paper_account_get_or_create(user=bot.owner, bot_id=bot.id, exchange=bot.exchange)
    if not existed:
        _base, quote = bot_assets(bot)
        account = paper_account_set_balances(
            account=account,
            balances={quote: str(bot.allocated_capital)},
            settings={"market_type": _market_type(bot)},
        )
        if bot.is_futures:
            from apps.exchanges.services import paper_gateway

            bot_futures_setup(bot=bot, gateway=paper_gateway(account))
    return account


def bot_paper_account_refit(*, bot: Bot) -> None:
    """After a stopped bot's settings changed: a paper account of the wrong market type starts
    afresh with the bot's capital; a futures market gets the bot's leverage and margin mode
    (``InvalidOrder`` while a position is open there)."""
    from apps.exchanges.services import paper_account_set_balances, paper_gateway

    account = PaperAccount.objects.filter(user_id=bot.owner_id, bot_id=bot.id, replay_id=None).first()
    if account is None:
        return  # made with the right settings when the bot first needs it
    if account.market_type != _market_type(bot):
        _base, quote = bot_assets(bot)
        account = paper_account_set_balances(
            account=account,
            balances={quote: str(bot.allocated_capital)},
            settings={"market_type": _market_type(bot)},
        )
    if bot.is_futures:
        bot_futures_setup(bot=bot, gateway=paper_gateway(account))


def bot_futures_setup(*, bot: Bot, gateway: ExchangeGateway) -> None:
    """Set the bot's leverage and margin mode on its futures market (refused while a position is open)."""
    gateway.set_margin_mode(bot.symbol, bot.margin_mode)
    gateway.set_leverage(bot.symbol, bot.leverage)


def bot_account(bot: Bot):
    """What ``order_place`` takes as ``account``: the paper account or the live connection."""
    return bot_paper_account(bot=bot) if bot.mode == Bot.Mode.PAPER else bot.connection


def bot_gateway(bot: Bot) -> ExchangeGateway:
    """The exchange adapter of the bot's account (paper or ccxt)."""
    if bot.mode == Bot.Mode.PAPER:
        from apps.exchanges.services import paper_gateway

        return paper_gateway(bot_paper_account(bot=bot))
    from apps.exchanges.services import gateway_for_connection

    return gateway_for_connection(bot.connection)
