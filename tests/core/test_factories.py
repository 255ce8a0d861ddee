"""Every factory in tests/factories.py builds a row the database and the model accept."""

from __future__ import annotations

from decimal import Decimal

import factory
import pytest

from tests import factories

pytestmark = pytest.mark.django_db

FACTORIES = sorted(
    (
        value
        for value in vars(factories).values()
        if isinstance(value, type)
        and issubclass(value, factory.django.DjangoModelFactory)
        and value is not factory.django.DjangoModelFactory
    ),
    key=lambda cls: cls.__name__,
)


def test_every_factory_is_collected():
    assert len(FACTORIES) >= 12


@pytest.mark.parametrize("factory_class", FACTORIES, ids=lambda cls: cls.__name__)
def test_factory_builds_two_valid_rows(factory_class):
    first, second = factory_class(), factory_class()
    for row in (first, second):
        row.full_clean()
        assert type(row).objects.filter(pk=row.pk).exists()


def test_paper_account_factory_holds_its_initial_balances():
    account = factories.PaperAccountFactory(initial_balances={"USDT": "500", "BTC": "0.25"})
    balances = {b.asset: b.free for b in account.balances.all()}
    assert balances == {"BTC": Decimal("0.25"), "USDT": Decimal("500")}


def test_bot_factory_stores_its_strategys_validated_defaults():
    bot = factories.BotFactory(strategy="sma_crossover")
    assert bot.params["fast"] < bot.params["slow"]
