from __future__ import annotations

from rest_framework import serializers

from apps.orders.models import Fill, Order

ORDER_FIELDS = [
    "id",
    "bot",
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
    "status",
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


class FillSerializer(serializers.ModelSerializer):
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


class OrderSerializer(serializers.ModelSerializer):
    # Declared: a property would otherwise be rendered through float. Decimals travel as strings.
    remaining = serializers.DecimalField(max_digits=None, decimal_places=None, read_only=True)

    class Meta:
        model = Order
        fields = ORDER_FIELDS
        read_only_fields = fields


class OrderDetailSerializer(OrderSerializer):
    fills = FillSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = [*ORDER_FIELDS, "fills"]
        read_only_fields = fields
