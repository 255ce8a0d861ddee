"""Admin for every exchanges model. Credentials are never shown, only the masked key."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from apps.exchanges.models import (
    ExchangeConnection,
    PaperAccount,
    PaperBalance,
    PaperOrder,
    PaperPosition,
    PaperTrade,
)


class ConnectionAdminForm(forms.ModelForm):
    # Write-only inputs: blank keeps the stored value, so the secret is never rendered into the page.
    # Named apart from the model fields so the admin never binds (or renders) the stored values.
    new_api_key = forms.CharField(
        label="API key", required=False, widget=forms.PasswordInput(render_value=False)
    )
    new_api_secret = forms.CharField(
        label="API secret", required=False, widget=forms.PasswordInput(render_value=False)
    )
    new_passphrase = forms.CharField(
        label="Passphrase", required=False, widget=forms.PasswordInput(render_value=False)
    )

    class Meta:
        model = ExchangeConnection
        # The credential inputs above are not model fields here, so a blank one never overwrites.
        fields = ["user", "exchange", "label", "testnet", "status"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["new_api_key"].help_text = f"Stored: {self.instance.api_key_masked}. Blank keeps it."
            self.fields["new_api_secret"].help_text = "Stored (hidden). Blank keeps it."
            self.fields["new_passphrase"].help_text = "Blank keeps the stored one (if any)."

    def clean(self):
        data = super().clean()
        for name in ("api_key", "api_secret"):
            if not data.get(f"new_{name}") and not (self.instance.pk and getattr(self.instance, name)):
                self.add_error(f"new_{name}", "Required.")
        return data

    def save(self, commit=True):
        instance = super().save(commit=False)
        for name in ("api_key", "api_secret", "passphrase"):
            value = self.cleaned_data.get(f"new_{name}")
            if value:
                setattr(instance, name, value.strip())
        if commit:
            instance.save()
        return instance


@admin.register(ExchangeConnection)
class ExchangeConnectionAdmin(admin.ModelAdmin):
    form = ConnectionAdminForm
    list_display = [
        "label",
        "user",
        "exchange",
        "masked_key",
        "testnet",
        "status",
        "can_withdraw",
        "deleted_at",
    ]
    list_filter = ["exchange", "status", "testnet", "can_withdraw"]
    search_fields = ["label", "user__email"]
    readonly_fields = [
        "masked_key", "last_error", "last_checked_at", "can_trade_spot", "can_trade_futures", "read_only",
        "can_withdraw", "created_at", "updated_at", "deleted_at",
    ]  # fmt: skip
    raw_id_fields = ["user"]

    @admin.display(description="API key")
    def masked_key(self, obj: ExchangeConnection) -> str:
        return obj.api_key_masked


class PaperBalanceInline(admin.TabularInline):
    model = PaperBalance
    extra = 0


@admin.register(PaperAccount)
class PaperAccountAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "bot_id", "exchange", "market_type", "maker_fee", "taker_fee", "reset_at"]
    list_filter = ["exchange", "market_type"]
    search_fields = ["user__email"]
    raw_id_fields = ["user"]
    inlines = [PaperBalanceInline]


@admin.register(PaperBalance)
class PaperBalanceAdmin(admin.ModelAdmin):
    list_display = ["account", "asset", "free", "used"]
    list_filter = ["asset"]
    search_fields = ["asset", "account__user__email"]


@admin.register(PaperOrder)
class PaperOrderAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "account",
        "symbol",
        "side",
        "type",
        "amount",
        "price",
        "stop_price",
        "filled",
        "status",
    ]
    list_filter = ["status", "type", "side"]
    search_fields = ["symbol", "client_order_id"]


@admin.register(PaperPosition)
class PaperPositionAdmin(admin.ModelAdmin):
    list_display = [
        "account",
        "symbol",
        "size",
        "entry_price",
        "leverage",
        "margin_mode",
        "margin",
        "funding",
    ]
    list_filter = ["margin_mode"]
    search_fields = ["symbol", "account__user__email"]


@admin.register(PaperTrade)
class PaperTradeAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "order",
        "symbol",
        "side",
        "price",
        "amount",
        "fee",
        "maker",
        "liquidation",
        "timestamp",
    ]
    list_filter = ["side", "maker", "liquidation"]
    search_fields = ["symbol", "order__client_order_id"]
