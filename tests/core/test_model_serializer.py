"""The project's ModelSerializer (apps.core.api.serializers): DRF's output, built and read faster."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework import serializers

from apps.bots.api.serializers import BotSerializer
from apps.core.api.serializers import ModelSerializer
from apps.orders.api.serializers import OrderDetailSerializer, OrderSerializer
from apps.orders.models import Order
from tests.factories import BotFactory, FillFactory, OrderFactory

pytestmark = pytest.mark.django_db


def drf_twin(serializer_class: type) -> type:
    """The same serializer (fields, methods, Meta) built and read by DRF's own ModelSerializer code."""
    return type(
        f"Drf{serializer_class.__name__}",
        (serializer_class,),
        {
            "get_fields": serializers.ModelSerializer.get_fields,
            "to_representation": serializers.Serializer.to_representation,
        },
    )


@pytest.mark.parametrize("serializer_class", [OrderSerializer, OrderDetailSerializer])
def test_orders_render_exactly_as_drf_renders_them(user, serializer_class):
    orders = [
        OrderFactory(owner=user, price=Decimal("20000.5"), stop_price=None),
        OrderFactory(owner=user, type="market", price=None, trailing_percent=Decimal("1.25")),
    ]
    FillFactory(order=orders[0])
    orders = list(Order.objects.filter(pk__in=[o.pk for o in orders]).order_by("pk"))
    ours = serializer_class(orders, many=True).data
    drf = drf_twin(serializer_class)(orders, many=True).data
    assert [dict(row) for row in ours] == [dict(row) for row in drf]
    # A second use of the class (its fields now built once) renders the same.
    assert [dict(row) for row in serializer_class(orders, many=True).data] == [dict(row) for row in drf]


def test_bots_render_exactly_as_drf_renders_them(user):
    bots = [BotFactory(owner=user), BotFactory(owner=user, stop_loss=Decimal("0.05"))]
    assert dict(BotSerializer(bots[1]).data) == dict(drf_twin(BotSerializer)(bots[1]).data)
    assert [dict(b) for b in BotSerializer(bots, many=True).data] == [
        dict(b) for b in drf_twin(BotSerializer)(bots, many=True).data
    ]


def test_fields_are_fresh_per_instance_and_nested_children_keep_their_parent(user):
    first, second = OrderDetailSerializer(), OrderDetailSerializer()
    assert first.fields["amount"] is not second.fields["amount"]
    assert first.fields["amount"].parent is first and second.fields["amount"].parent is second
    assert first.fields["fills"].child is not second.fields["fills"].child
    assert first.fields["fills"].parent is first and second.fields["fills"].parent is second


class _Thing:
    def __init__(self, **values):
        self.__dict__.update(values)


class _CallableSource(ModelSerializer):
    # A callable attribute is called; a missing attribute with a default takes it (DRF's path).
    label = serializers.CharField(source="describe")
    note = serializers.CharField(default="none")

    class Meta:
        model = Order
        fields = ["id", "label", "note"]


def test_callables_defaults_and_mappings_follow_drf():
    thing = _Thing(id=7, describe=lambda: "seven")
    assert dict(_CallableSource(thing).data) == {"id": 7, "label": "seven", "note": "none"}
    assert dict(_CallableSource({"id": 8, "describe": "eight", "note": "n"}).data) == {
        "id": 8,
        "label": "eight",
        "note": "n",
    }
    with pytest.raises(AttributeError):
        _CallableSource(_Thing(id=9)).data  # noqa: B018 - DRF's error for a missing attribute
