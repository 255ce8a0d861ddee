"""Rows written in the old spellings read back in the one vocabulary after the migrations."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from django.apps import apps

from apps.exchanges.models import PaperOrder
from apps.exchanges.services import paper_account_get_or_create
from apps.orders.models import Order
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

orders_0002 = importlib.import_module("apps.orders.migrations.0002_order_vocabulary")
exchanges_0002 = importlib.import_module("apps.exchanges.migrations.0002_paper_order_vocabulary")


def test_order_rows_in_old_spellings_are_renamed_and_back(user):
    new = OrderFactory(owner=user)
    canceled = OrderFactory(owner=user)
    stop = OrderFactory(owner=user, type="stop_market", stop_price=Decimal("1"))
    Order.objects.filter(pk=new.pk).update(status="new")
    Order.objects.filter(pk=canceled.pk).update(status="canceled")
    Order.objects.filter(pk=stop.pk).update(type="stop")

    orders_0002.forwards(apps, None)
    assert Order.objects.get(pk=new.pk).status == "pending"
    assert Order.objects.get(pk=canceled.pk).status == "cancelled"
    assert Order.objects.get(pk=stop.pk).type == "stop_market"

    orders_0002.backwards(apps, None)
    assert Order.objects.get(pk=new.pk).status == "new"
    assert Order.objects.get(pk=stop.pk).type == "stop"


def test_paper_orders_in_ccxt_spellings_are_renamed_and_back(user):
    paper_account = paper_account_get_or_create(user=user)

    def paper_order(client_id, status, filled="0"):
        return PaperOrder.objects.create(
            account=paper_account, client_order_id=client_id, symbol="BTC/USDT", base="BTC", quote="USDT",
            side="buy", type="limit", amount=Decimal("1"), price=Decimal("1"), filled=Decimal(filled),
            status=status, rests_from=0, checked_until=0,
        )  # fmt: skip

    paper_order("a", "closed", filled="1")
    paper_order("b", "canceled")
    partial = paper_order("c", "open", filled="0.5")
    resting = paper_order("d", "open")

    exchanges_0002.forwards(apps, None)
    statuses = dict(PaperOrder.objects.values_list("client_order_id", "status"))
    assert statuses == {"a": "filled", "b": "cancelled", "c": "partially_filled", "d": "open"}
    assert set(PaperOrder.objects.open().values_list("pk", flat=True)) == {partial.pk, resting.pk}

    exchanges_0002.backwards(apps, None)
    statuses = dict(PaperOrder.objects.values_list("client_order_id", "status"))
    assert statuses == {"a": "closed", "b": "canceled", "c": "open", "d": "open"}
