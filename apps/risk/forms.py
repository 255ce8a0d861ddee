from __future__ import annotations

from django import forms

from apps.core.errors import ValidationFailed
from apps.risk import services
from apps.risk.models import LimitAction, LimitKind, RiskLimit, RiskProfile


class RiskProfileForm(forms.Form):
    """The dashboard's limits form (the kill switch has its own button); the rules are the service's."""

    currency = forms.CharField(max_length=20, help_text="currency of the money limits, e.g. USDT")
    max_position_notional = forms.DecimalField(
        required=False, label="Max position value", help_text="per market; empty = no limit"
    )
    max_daily_loss = forms.DecimalField(
        required=False,
        help_text="new orders stop after losing more than this since your local midnight; empty = no limit",
    )
    max_leverage = forms.DecimalField(help_text="1 = no leverage")
    max_open_orders = forms.IntegerField()

    @classmethod
    def for_profile(cls, profile: RiskProfile, data=None) -> RiskProfileForm:
        initial = {name: getattr(profile, name) for name in cls.base_fields}
        return cls(data, initial=initial)

    def save(self, *, user) -> RiskProfile | None:
        try:
            return services.risk_profile_update(user=user, **self.cleaned_data)
        except ValidationFailed as exc:
            for field, messages in exc.fields.items():
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
            return None


class RiskLimitForm(forms.Form):
    """The dashboard's "add a limit" form; the rules are the service's (``risk_limit_create``)."""

    kind = forms.ChoiceField(choices=LimitKind.choices)
    value = forms.DecimalField(help_text="money in the profile currency; fractions as 0.5 = 50%; counts")
    action = forms.ChoiceField(choices=LimitAction.choices, initial=LimitAction.REJECT)
    bot = forms.IntegerField(required=False, help_text="bot id; empty = every bot")
    symbol = forms.CharField(required=False, max_length=60, help_text="e.g. BTC/USDT; empty = every market")
    asset = forms.CharField(required=False, max_length=20, help_text="asset exposure only, e.g. BTC")
    cooldown_minutes = forms.IntegerField(required=False, initial=60, help_text="losing streak only")

    def save(self, *, user) -> RiskLimit | None:
        data = {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}
        try:
            return services.risk_limit_create(user=user, **data)
        except ValidationFailed as exc:
            for field, messages in exc.fields.items():
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
            return None
