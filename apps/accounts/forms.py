from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from apps.accounts import services
from apps.accounts.models import TIMEZONE_CHOICES, DisplayCurrency, User
from apps.core.errors import ValidationFailed


class LoginForm(AuthenticationForm):
    """Django's login form plus a per-account lock-out after repeated failures."""

    username = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autofocus": True}))

    def clean(self):
        email = self.cleaned_data.get("username") or ""
        if email and services.login_locked(email=email):
            raise forms.ValidationError(services.locked_message(), code="locked")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            services.login_failed(email=email)
            raise
        services.login_succeeded(email=email)
        return cleaned


class RegistrationForm(forms.Form):
    email = forms.EmailField()
    display_name = forms.CharField(max_length=80, required=False)
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password (again)", widget=forms.PasswordInput, strip=False)

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists.")
        return email

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return cleaned

    def save(self) -> User | None:
        try:
            return services.user_register(
                email=self.cleaned_data["email"],
                password=self.cleaned_data["password1"],
                display_name=self.cleaned_data.get("display_name", ""),
            )
        except ValidationFailed as exc:
            for field, messages in exc.fields.items():
                for message in messages:
                    self.add_error("password1" if field == "password" else field, message)
            return None


class SettingsForm(forms.Form):
    display_name = forms.CharField(max_length=80, required=False)
    timezone = forms.ChoiceField(choices=TIMEZONE_CHOICES)
    display_currency = forms.ChoiceField(choices=DisplayCurrency.choices)
    default_exchange = forms.CharField(
        max_length=32, help_text="A ccxt exchange id, e.g. binance, kraken, bybit."
    )

    def save(self, *, user: User) -> User | None:
        try:
            return services.user_update(user=user, **self.cleaned_data)
        except ValidationFailed as exc:
            for field, messages in exc.fields.items():
                for message in messages:
                    self.add_error(field, message)
            return None
