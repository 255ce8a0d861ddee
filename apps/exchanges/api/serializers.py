"""API shapes. Credentials are write-only; reads show the key masked and never the secret."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.api.serializers import ModelSerializer, StrictSerializer
from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES
from apps.exchanges.catalog import SUPPORTED_EXCHANGES
from apps.exchanges.models import ExchangeConnection, PaperAccount, PaperPosition


def plain(value: Decimal) -> str:
    """``10000.000...`` -> ``"10000"`` (no exponent, no trailing zeros)."""
    return format(value.normalize(), "f")


class ConnectionSerializer(ModelSerializer):
    exchange_name = serializers.SerializerMethodField()
    api_key = serializers.CharField(source="api_key_masked", read_only=True)
    has_passphrase = serializers.BooleanField(read_only=True)
    permissions = serializers.ListField(child=serializers.CharField(), read_only=True)
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ExchangeConnection
        fields = [
            "id", "exchange", "exchange_name", "label", "api_key", "has_passphrase", "testnet", "status",
            "last_error", "last_checked_at", "permissions", "warnings", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_exchange_name(self, obj: ExchangeConnection) -> str:
        info = SUPPORTED_EXCHANGES.get(obj.exchange)
        return info.name if info else obj.exchange


class ConnectionWriteSerializer(StrictSerializer):
    """Input; the service validates exchange/secret rules so the API and the dashboard agree."""

    exchange = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    label = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
    api_key = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="", write_only=True
    )
    api_secret = serializers.CharField(
        max_length=4000, required=False, allow_blank=True, default="", write_only=True
    )
    passphrase = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="", write_only=True
    )
    testnet = serializers.BooleanField(required=False, default=False)


class ConnectionUpdateSerializer(StrictSerializer):
    """PUT sends ``label`` and ``testnet`` (required; PATCH any field). The secrets are write-only, so
    a client cannot send them back: left out or blank, each keeps its stored value."""

    label = serializers.CharField(max_length=80)
    api_key = serializers.CharField(max_length=500, required=False, allow_blank=True, write_only=True)
    api_secret = serializers.CharField(max_length=4000, required=False, allow_blank=True, write_only=True)
    passphrase = serializers.CharField(max_length=500, required=False, allow_blank=True, write_only=True)
    testnet = serializers.BooleanField()


class CheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    connection = ConnectionSerializer()


class BalanceSerializer(serializers.Serializer):
    asset = serializers.CharField()
    free = serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, coerce_to_string=True
    )
    used = serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, coerce_to_string=True
    )
    total = serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, coerce_to_string=True
    )


class AccountBalanceSerializer(serializers.Serializer):
    timestamp = serializers.IntegerField(allow_null=True)
    balances = BalanceSerializer(many=True)


class SupportedExchangeSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    needs_passphrase = serializers.BooleanField()
    has_testnet = serializers.BooleanField()
    futures = serializers.BooleanField()
    help = serializers.CharField()


class SupportedExchangesSerializer(serializers.Serializer):
    results = SupportedExchangeSerializer(many=True)


class PaperPositionSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=["long", "short"])
    size = serializers.CharField(help_text="contracts (base units), unsigned")
    entry_price = serializers.CharField()
    leverage = serializers.CharField()
    margin_mode = serializers.ChoiceField(choices=PaperPosition.MarginMode.choices)
    margin = serializers.CharField(help_text="initial margin held in the quote balance")
    realized_pnl = serializers.CharField()
    funding = serializers.CharField(help_text="funding paid (negative: received)")


class PaperAccountSerializer(ModelSerializer):
    balances = serializers.SerializerMethodField()
    positions = serializers.SerializerMethodField()

    class Meta:
        model = PaperAccount
        fields = [
            "id", "bot_id", "exchange", "market_type", "funding_rate", "initial_balances", "maker_fee",
            "taker_fee", "slippage", "max_volume_fraction", "created_at", "reset_at", "balances", "positions",
        ]  # fmt: skip
        read_only_fields = fields

    def get_balances(self, obj: PaperAccount) -> list[dict]:
        return [
            {"asset": b.asset, "free": plain(b.free), "used": plain(b.used), "total": plain(b.total)}
            for b in obj.balances.order_by("asset")
        ]  # fmt: skip

    @extend_schema_field(PaperPositionSerializer(many=True))
    def get_positions(self, obj: PaperAccount) -> list[dict]:
        """Open futures positions as stored (the gateway's ``fetch_positions`` adds mark and liquidation)."""
        return [
            {
                "symbol": p.symbol, "side": "long" if p.size > 0 else "short", "size": plain(abs(p.size)),
                "entry_price": plain(p.entry_price), "leverage": plain(p.leverage), "margin_mode": p.margin_mode,
                "margin": plain(p.margin), "realized_pnl": plain(p.realized_pnl), "funding": plain(p.funding),
            }
            for p in obj.positions.exclude(size=0).order_by("symbol")
        ]  # fmt: skip


# PaperAccount.bot_id is a bigint: larger numbers are bad input, not a database overflow.
BOT_ID_MAX = 2**63 - 1


class PaperBotQuerySerializer(serializers.Serializer):
    bot_id = serializers.IntegerField(required=False, min_value=1, max_value=BOT_ID_MAX, allow_null=True)


class PaperResetSerializer(StrictSerializer):
    balances = serializers.DictField(child=serializers.CharField(), required=False, allow_empty=False)
    bot_id = serializers.IntegerField(required=False, min_value=1, max_value=BOT_ID_MAX, allow_null=True)
    market_type = serializers.ChoiceField(
        choices=PaperAccount.MarketType.choices,
        required=False,
        help_text="spot or USD-M futures; changing it is part of the reset (positions are dropped)",
    )
    funding_rate = serializers.DecimalField(
        max_digits=12,
        decimal_places=8,
        min_value=Decimal("-0.0999"),
        max_value=Decimal("0.0999"),
        required=False,
        allow_null=True,
        help_text="futures: a constant funding rate every 8 h; null: the stored funding history",
    )
