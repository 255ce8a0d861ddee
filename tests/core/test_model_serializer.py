"""The project's ModelSerializer (apps.core.api.serializers): DRF's output, built and read faster."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework import serializers

from apps.bots.api.serializers import BotSerializer
from apps.core.api.serializers import ModelSerializer, SharedFieldsMixin
from apps.orders.api.serializers import OrderDetailSerializer, OrderInputSerializer, OrderSerializer
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


class _Unshared(OrderDetailSerializer):
    shared_fields = False


def test_fields_are_fresh_per_instance_and_nested_children_keep_their_parent(user):
    first, second = _Unshared(), _Unshared()
    assert first.fields["amount"] is not second.fields["amount"]
    assert first.fields["amount"].parent is first and second.fields["amount"].parent is second
    assert first.fields["fills"].child is not second.fields["fills"].child
    assert first.fields["fills"].parent is first and second.fields["fills"].parent is second


def test_a_class_that_shares_its_fields_builds_them_once_and_a_partial_instance_its_own():
    first, second = OrderDetailSerializer(), OrderDetailSerializer(context={"request": object()})
    assert first.fields is second.fields
    assert first.fields["fills"].child.fields is second.fields["fills"].child.fields
    # Bound to a serializer of their own, with no request, and none can be left there (drf-spectacular
    # writes its schema request into the context of each nested serializer it describes).
    first.fields["fills"].child.context.update({"request": object()})
    second.fields["fills"].child.context["view"] = object()
    assert second.fields["amount"].context == {} and first.fields["fills"].child.context == {}
    body = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "1"}
    assert OrderInputSerializer(data=body).fields is OrderInputSerializer(data={}).fields
    partial = OrderInputSerializer(data={"amount": "2"}, partial=True)
    assert partial.fields is not OrderInputSerializer(data=body).fields
    assert partial.is_valid(), partial.errors  # its own fields see that it is partial
    assert not OrderInputSerializer(data={"amount": "2"}).is_valid()


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _context_readers(serializer) -> list[str]:
    found = []
    for name, field in serializer.fields.items():
        child = getattr(field, "child", None)
        nested = field if isinstance(field, serializers.BaseSerializer) and child is None else child
        if isinstance(nested, serializers.BaseSerializer):
            found += [f"{name}.{inner}" for inner in _context_readers(nested)]
        elif isinstance(
            field, serializers.SerializerMethodField | serializers.HyperlinkedRelatedField
        ) or getattr(getattr(field, "default", None), "requires_context", False):
            found.append(name)
    return found


def test_no_class_that_shares_its_fields_has_one_that_reads_the_request():
    # Shared fields are bound to a serializer with no context: one that asks for the request (a
    # method field, a hyperlink, a current-user default) would see none.
    import apps.orders.api.serializers  # noqa: F401 - the classes that opt in

    shared = {
        cls
        for cls in _subclasses(SharedFieldsMixin)
        if cls.shared_fields and cls.__module__.startswith("apps.")
    }
    assert {OrderSerializer, OrderDetailSerializer, OrderInputSerializer} <= shared
    assert {cls.__name__: _context_readers(cls()) for cls in shared} == {cls.__name__: [] for cls in shared}


def test_the_check_for_request_readers_finds_them():
    class _Reads(OrderDetailSerializer):
        mine = serializers.SerializerMethodField()

        class Meta(OrderDetailSerializer.Meta):
            fields = [*OrderDetailSerializer.Meta.fields, "mine"]

        def get_mine(self, order):
            return self.context["request"].user.pk

    assert _context_readers(_Reads()) == ["mine"]


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
