"""Database rules of the bots table, whoever writes it."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.db.models import RestrictedError

from apps.bots.models import Bot
from tests.factories import BotFactory, ExchangeConnectionFactory

pytestmark = pytest.mark.django_db

COMMON = {"strategy": "dca", "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1d"}


def test_live_bot_without_connection_is_refused_by_the_database(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        Bot.objects.create(owner=user, name="x", mode=Bot.Mode.LIVE, **COMMON)


def test_a_connection_in_use_cannot_be_hard_deleted_but_the_user_can(user):
    connection = ExchangeConnectionFactory(user=user)
    bot = BotFactory(owner=user, mode=Bot.Mode.LIVE, connection=connection)
    with pytest.raises(RestrictedError), transaction.atomic():
        connection.delete()
    user.delete()
    assert not Bot.objects.filter(pk=bot.pk).exists()


def test_active_queryset_is_running_and_paused(user):
    ids = {status: BotFactory(owner=user, status=status).pk for status in Bot.Status.values}
    assert set(Bot.objects.active().values_list("pk", flat=True)) == {ids["running"], ids["paused"]}
