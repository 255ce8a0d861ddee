"""A bot's P&L is read from cached fills; every new fill changes the cache key, so it is never stale."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.bots.selectors import bot_pnl, bots_with_pnl
from tests.factories import T0, BotFactory, FillFactory, OrderFactory, UserFactory

pytestmark = pytest.mark.django_db


def fill(bot, side: str, price: str, minutes: int) -> None:
    order = OrderFactory(owner=bot.owner, bot=bot, side=side, amount=Decimal(1), price=Decimal(price))
    FillFactory(
        order=order,
        price=Decimal(price),
        amount=Decimal(1),
        fee=Decimal(0),
        fee_asset="USDT",
        timestamp=T0 + timedelta(minutes=minutes),
    )


def test_a_new_fill_changes_the_cached_pnl():
    bot = BotFactory()
    fill(bot, "buy", "100", 0)
    fill(bot, "sell", "110", 1)
    assert bot_pnl(bot=bot)["realized_pnl"] == pytest.approx(10)
    assert bot_pnl(bot=bot)["realized_pnl"] == pytest.approx(10)  # from the cache
    fill(bot, "buy", "105", 2)
    fill(bot, "sell", "100", 3)
    pnl = bot_pnl(bot=bot)
    assert pnl["realized_pnl"] == pytest.approx(5) and pnl["size"] == 0


def test_pnl_of_many_bots_reads_their_fill_marks_in_one_query():
    user = UserFactory()
    bots = [BotFactory(owner=user) for _ in range(3)]
    for i, bot in enumerate(bots):
        fill(bot, "buy", "100", 0)
        fill(bot, "sell", str(100 + i), 1)
    bots_with_pnl(bots)  # fills the cache
    with CaptureQueriesContext(connection) as queries:
        result = bots_with_pnl(bots)
    assert [b.pnl["realized_pnl"] for b in result] == pytest.approx([0, 1, 2])
    assert sum("orders_fill" in q["sql"] for q in queries.captured_queries) == 1
