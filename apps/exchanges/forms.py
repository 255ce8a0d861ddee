from __future__ import annotations

from django import forms

from apps.exchanges.catalog import exchange_choices


class ConnectionForm(forms.Form):
    exchange = forms.ChoiceField(choices=exchange_choices)
    label = forms.CharField(max_length=80, required=False, help_text="Your name for this account.")
    api_key = forms.CharField(
        label="API key",
        max_length=500,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    api_secret = forms.CharField(
        label="API secret",
        max_length=4000,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    passphrase = forms.CharField(
        max_length=500, required=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    testnet = forms.BooleanField(required=False, label="Use the testnet / sandbox")


class PaperBalancesForm(forms.Form):
    balances = forms.CharField(
        max_length=500,
        help_text="Initial balances, e.g. USDT=10000, BTC=0.5. Resetting drops open paper orders.",
    )

    def clean_balances(self) -> dict[str, str]:
        out = {}
        for part in self.cleaned_data["balances"].split(","):
            if not part.strip():
                continue
            asset, sep, amount = part.partition("=")
            if not sep:
                raise forms.ValidationError("Write ASSET=AMOUNT pairs separated by commas.")
            out[asset.strip()] = amount.strip()
        if not out:
            raise forms.ValidationError("Give at least one balance.")
        return out
