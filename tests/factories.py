"""factory_boy factories for the rows tests build, one per model, all in this module.

Factories build valid rows directly, for tests whose subject is something else
(a page, a filter, owner scoping). A test about a service's own validation or
side effects calls that service instead. ``tests/core/test_factories.py`` builds
each one once, so a model change that breaks a factory fails there first.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
from django.db import transaction

from apps.accounts.models import User
from apps.backtests.strategies.registry import get_strategy_class
from apps.bots.models import Bot
from apps.exchanges import services as exchange_services
from apps.exchanges.models import ExchangeConnection, PaperAccount
from apps.marketdata.models import Candle, Exchange, Market, Subscription
from apps.orders.models import Fill, Order
from apps.portfolio.models import EquitySnapshot
from apps.risk.models import RiskProfile

PASSWORD = "correct-horse-battery-42"
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"trader{n}-{uuid.uuid4().hex[:8]}@example.com")
    display_name = factory.Faker("first_name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        if create:
            instance.save()


# ------------------------------------------------------------------ exchanges
class ExchangeConnectionFactory(factory.django.DjangoModelFactory):
    """Credentials stored (encrypted) as given; status "untested" until a test of the key."""

    class Meta:
        model = ExchangeConnection

    user = factory.SubFactory(UserFactory)
    exchange = "binance"
    label = factory.Sequence(lambda n: f"binance {n}")
    api_key = factory.Sequence(lambda n: f"key-{n:04d}-abcdefgh")
    api_secret = factory.Sequence(lambda n: f"secret-{n:04d}-abcdefgh")


class PaperAccountFactory(factory.django.DjangoModelFactory):
    """A user's paper account holding its ``initial_balances`` (the balance rows are created too)."""

    class Meta:
        model = PaperAccount

    user = factory.SubFactory(UserFactory)
    initial_balances = factory.LazyFunction(lambda: {"USDT": "10000"})

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with transaction.atomic():
            return exchange_services.paper_account_restart(
                account=super()._create(model_class, *args, **kwargs)
            )


# ------------------------------------------------------------------ marketdata
class ExchangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Exchange
        django_get_or_create = ("slug",)

    slug = "binance"
    name = factory.LazyAttribute(lambda o: o.slug.title())


class MarketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Market
        django_get_or_create = ("exchange", "symbol")

    exchange = factory.SubFactory(ExchangeFactory)
    symbol = "BTC/USDT"
    exchange_symbol = factory.LazyAttribute(lambda o: o.symbol.replace("/", ""))
    base = factory.LazyAttribute(lambda o: o.symbol.split("/")[0])
    quote = factory.LazyAttribute(lambda o: o.symbol.split("/")[1].split(":")[0])
    precision_amount = Decimal("0.00001")
    precision_price = Decimal("0.01")


class CandleFactory(factory.django.DjangoModelFactory):
    """Hourly candles one after another from ``T0``."""

    class Meta:
        model = Candle

    market = factory.SubFactory(MarketFactory)
    timeframe = "1h"
    open_time = factory.Sequence(lambda n: int((T0 + timedelta(hours=n)).timestamp() * 1000))
    open = 64000.0
    high = 64250.5
    low = 63900.0
    close = 64100.0
    volume = 12.5


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    user = factory.SubFactory(UserFactory)
    market = factory.SubFactory(MarketFactory)
    timeframe = "1h"


# ------------------------------------------------------------------ bots, orders
class BotFactory(factory.django.DjangoModelFactory):
    """A stopped paper bot whose params are its strategy's validated defaults."""

    class Meta:
        model = Bot

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"bot {n}")
    strategy = "dca"
    params = factory.LazyAttribute(lambda o: get_strategy_class(o.strategy).validate({}))
    exchange = "binance"
    symbol = "BTC/USDT"
    timeframe = "1d"


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    owner = factory.SubFactory(UserFactory)
    # The owner's own paper account unless a connection or another account is given.
    paper_account = factory.LazyAttribute(
        lambda o: (
            None if o.connection is not None else exchange_services.paper_account_get_or_create(user=o.owner)
        )
    )
    connection = None
    exchange = "binance"
    symbol = "BTC/USDT"
    side = Order.Side.BUY
    type = Order.Type.LIMIT
    amount = Decimal("0.015")
    price = Decimal("64250.5")
    status = Order.Status.OPEN


class FillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Fill

    order = factory.SubFactory(OrderFactory)
    paper_account = factory.SelfAttribute("order.paper_account")
    connection = factory.SelfAttribute("order.connection")
    exchange_trade_id = factory.Sequence(lambda n: f"trade-{n}")
    price = Decimal("64250.5")
    amount = Decimal("0.005")
    fee = Decimal("0.000005")
    fee_asset = "BTC"
    is_maker = True
    timestamp = T0


# ------------------------------------------------------------------ risk, portfolio
class RiskProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RiskProfile

    owner = factory.SubFactory(UserFactory)
    max_position_notional = Decimal("2500.50")
    max_daily_loss = Decimal("150")


class EquitySnapshotFactory(factory.django.DjangoModelFactory):
    """Daily snapshots one after another from ``T0``."""

    class Meta:
        model = EquitySnapshot

    owner = factory.SubFactory(UserFactory)
    timestamp = factory.Sequence(lambda n: T0 + timedelta(days=n))
    equity = Decimal("10000")
    currency = "USDT"
