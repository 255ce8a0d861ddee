from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import factory

from apps.orders.models import Fill, Order
from tests.factories import UserFactory


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    owner = factory.SubFactory(UserFactory)
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
    exchange_trade_id = factory.Sequence(lambda n: f"trade-{n}")
    price = Decimal("64250.5")
    amount = Decimal("0.005")
    fee = Decimal("0.000005")
    fee_asset = "BTC"
    is_maker = True
    timestamp = factory.LazyFunction(lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
