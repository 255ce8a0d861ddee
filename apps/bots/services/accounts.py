"""Where a bot trades: its own paper account, or its live connection, as a gateway."""

from __future__ import annotations

from apps.bots.models import Bot
from apps.exchanges.gateway.base import ExchangeGateway
from apps.exchanges.gateway.paper import split_symbol
from apps.exchanges.models import PaperAccount


def bot_paper_account(*, bot: Bot) -> PaperAccount:
    """The bot's own paper account, created holding its allocated capital in the quote currency.

    One account per bot keeps its balances, position and P&L apart from the
    owner's manual paper trading and from other bots.
    """
    from apps.exchanges.services import paper_account_get_or_create, paper_account_set_balances

    existed = PaperAccount.objects.filter(user_id=bot.owner_id, bot_id=bot.id).exists()
    account = paper_account_get_or_create(user=bot.owner, bot_id=bot.id, exchange=bot.exchange)
    if not existed:
        _base, quote = split_symbol(bot.symbol)
        account = paper_account_set_balances(account=account, balances={quote: str(bot.allocated_capital)})
    return account


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
