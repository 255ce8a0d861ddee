from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from apps.core.api.serializers import ModelSerializer, StrictSerializer
from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES
from apps.orders.enums import OrderSide, OrderType, TimeInForce
from apps.orders.models import Fill, Order, Position

ORDER_FIELDS = [
    "id",
    "paper_account",
    "connection",
    "bot",
    "parent",
    "role",
    "held",
    "exchange",
    "symbol",
    "base_asset",
    "quote_asset",
    "side",
    "type",
    "amount",
    "price",
    "stop_price",
    "trailing_percent",
    "time_in_force",
    "reduce_only",
    "status",
    "reason",
    "client_order_id",
    "exchange_order_id",
    "filled",
    "remaining",
    "average_price",
    "fee",
    "fee_asset",
    "created_at",
    "updated_at",
]


class FillSerializer(ModelSerializer):
    shared_fields = True  # nothing here reads the context (nor do TradeSerializer's)

    # Declared: a property would otherwise be rendered through float.
    cost = serializers.DecimalField(max_digits=None, decimal_places=None, read_only=True)

    class Meta:
        model = Fill
        fields = [
            "id",
            "exchange_trade_id",
            "price",
            "amount",
            "cost",
            "fee",
            "fee_asset",
            "is_maker",
            "timestamp",
        ]
        read_only_fields = fields


class OrderSerializer(ModelSerializer):
    shared_fields = True  # nothing here reads the context (nor do OrderDetailSerializer's)

    # Declared: a property would otherwise be rendered through float. Decimals travel as strings.
    remaining = serializers.DecimalField(max_digits=None, decimal_places=None, read_only=True)

    class Meta:
        model = Order
        fields = ORDER_FIELDS
        read_only_fields = fields


class OrderDetailSerializer(OrderSerializer):
    fills = FillSerializer(many=True, read_only=True)
    legs = OrderSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = [*ORDER_FIELDS, "fills", "legs"]
        read_only_fields = fields


def _amount(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, min_value=Decimal("0"), **kwargs
    )


class AccountInputSerializer(StrictSerializer):
    """Which account: a paper account or a live connection by id; neither means your paper account."""

    paper_account = serializers.IntegerField(required=False, min_value=1)
    connection = serializers.IntegerField(required=False, min_value=1)


class OrderInputSerializer(AccountInputSerializer):
    """A manual order. ``stop_loss``/``take_profit`` make a market or limit entry a bracket."""

    shared_fields = True  # nothing here reads the context

    symbol = serializers.CharField(max_length=60)
    side = serializers.ChoiceField(choices=OrderSide.choices)
    type = serializers.ChoiceField(choices=OrderType.choices)
    amount = _amount()
    price = _amount(required=False, allow_null=True)
    stop_price = _amount(required=False, allow_null=True)
    trailing_percent = serializers.DecimalField(
        max_digits=7, decimal_places=4, min_value=Decimal("0"), required=False, allow_null=True
    )
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices, default=TimeInForce.GTC)
    reduce_only = serializers.BooleanField(default=False)
    client_order_id = serializers.RegexField(r"^[A-Za-z0-9_-]{1,36}$", required=False)
    bot = serializers.IntegerField(required=False, min_value=1)
    stop_loss = _amount(required=False, allow_null=True)
    take_profit = _amount(required=False, allow_null=True)


class CancelAllInputSerializer(AccountInputSerializer):
    bot = serializers.IntegerField(required=False, min_value=1)
    symbol = serializers.CharField(max_length=60, required=False)


class CancelAllSerializer(serializers.Serializer):
    cancelled = serializers.IntegerField(help_text="how many orders were cancelled")


class TradeSerializer(FillSerializer):
    order = serializers.IntegerField(source="order_id", read_only=True)
    symbol = serializers.CharField(source="order.symbol", read_only=True)
    side = serializers.CharField(source="order.side", read_only=True)
    bot = serializers.IntegerField(source="order.bot_id", read_only=True, allow_null=True)

    class Meta(FillSerializer.Meta):
        fields = [
            *FillSerializer.Meta.fields,
            "order",
            "symbol",
            "side",
            "bot",
            "paper_account",
            "connection",
        ]
        read_only_fields = fields


class PositionSerializer(ModelSerializer):
    shared_fields = True  # nothing here reads the context

    class Meta:
        model = Position
        fields = [
            "id",
            "paper_account",
            "connection",
            "symbol",
            "side",
            "size",
            "average_entry",
            "mark_price",
            "realized_pnl",
            "unrealized_pnl",
            "leverage",
            "margin_mode",
            "liquidation_price",
            "updated_at",
        ]
        read_only_fields = fields
