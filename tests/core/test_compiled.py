"""Hot queries compiled once (apps/core/compiled.py): the ORM's rows, for every shape of arguments."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from apps.core.compiled import compiled
from apps.exchanges.models import PaperAccount, PaperBalance
from apps.orders.models import Position
from apps.risk.models import RiskState
from tests.factories import BotFactory, PaperAccountFactory, UserFactory

pytestmark = pytest.mark.django_db


@compiled
def own_account(user_id, bot_id):
    return PaperAccount.objects.filter(user_id=user_id, bot_id=bot_id, replay_id=None).order_by("pk")[:1]


@compiled
def balances(account_id, assets):
    return PaperBalance.objects.select_for_update().filter(account_id=account_id, asset__in=assets)


@compiled
def assets_of(account_id):
    return (
        PaperBalance.objects.filter(account_id=account_id).order_by("asset").values_list("asset", flat=True)
    )


def test_each_shape_of_arguments_reads_what_the_orm_reads():
    user, other = UserFactory(), UserFactory()
    bot = BotFactory(owner=user)
    mine = PaperAccountFactory(user=user)
    bots = PaperAccountFactory(user=user, bot_id=bot.pk)
    PaperAccountFactory(user=other)
    # None (IS NULL) and an id are two statements; each call takes its own values.
    assert own_account(user.pk, None) == [mine] and own_account(user.pk, bot.pk) == [bots]
    assert own_account(other.pk, bot.pk) == [] and own_account(other.pk, None)[0].user_id == other.pk
    for asset, free in (("BTC", "1.5"), ("USDT", "1000.25"), ("ETH", "0")):
        PaperBalance.objects.update_or_create(account=mine, asset=asset, defaults={"free": Decimal(free)})
    with transaction.atomic():
        for wanted in (["BTC"], ["BTC", "USDT"], ["USDT", "ETH", "XRP"]):  # a list's length is its shape
            read = balances(mine.pk, wanted)
            orm = list(PaperBalance.objects.filter(account_id=mine.pk, asset__in=wanted))
            assert read == orm
            assert [(b.asset, b.free, b.used) for b in read] == [(b.asset, b.free, b.used) for b in orm]
            assert all(isinstance(b.free, Decimal) for b in read)  # SQLite's decimals converted as by the ORM
    assert assets_of(mine.pk) == sorted(
        PaperBalance.objects.filter(account=mine).values_list("asset", flat=True)
    )


def test_rows_are_made_as_the_orm_makes_them_and_lock_as_asked(django_assert_num_queries):
    user = UserFactory()
    account = PaperAccountFactory(user=user)
    position = Position.objects.create(
        owner=user, paper_account=account, symbol="BTC/USDT", side="long", size=1
    )

    @compiled
    def locked(pk):
        return Position.objects.select_for_update().filter(pk=pk)

    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            (read,) = locked(position.pk)
        assert read.pk == position.pk and read._state.adding is False and read._state.db == "default"
        assert read._risk_loaded == ("long", Decimal("1"), Decimal("0"))  # post_init receivers ran
    if connection.features.has_select_for_update:
        assert queries.captured_queries[0]["sql"].endswith("FOR UPDATE")
    with django_assert_num_queries(1):
        locked(position.pk)  # compiled once: the ORM is not asked again, the database is


def test_what_it_cannot_run_exactly_is_refused_when_first_compiled():
    @compiled
    def by_day(day):  # a date field turns the string into a date: not the value given
        return RiskState.objects.filter(day=day)

    @compiled
    def annotated(pk):
        return PaperBalance.objects.filter(pk=pk).annotate(total=F("free") + F("used"))

    @compiled
    def some_columns(pk):
        return PaperBalance.objects.filter(pk=pk).only("asset")

    with pytest.raises(TypeError, match="stand-in"):
        by_day("2026-01-01")
    with pytest.raises(TypeError, match="annotations"):
        annotated(1)
    with pytest.raises(TypeError, match="every column"):
        some_columns(1)
    with pytest.raises(TypeError, match="Decimal"):
        balances(Decimal("1"), ["BTC"])
