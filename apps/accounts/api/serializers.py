from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer

from apps.accounts import services
from apps.accounts.models import User
from apps.accounts.quotas import quota_summary
from apps.core.api.serializers import ModelSerializer, StrictSerializer


class QuotaSerializer(serializers.Serializer):
    limit = serializers.IntegerField(help_text="the most allowed at once (set by an admin, or the default)")
    used = serializers.IntegerField(help_text="how many there are now")
    description = serializers.CharField(help_text="what is counted")


class QuotasSerializer(serializers.Serializer):
    research_jobs = QuotaSerializer()
    running_bots = QuotaSerializer()
    bots = QuotaSerializer()


class UserSerializer(ModelSerializer):
    quotas = serializers.SerializerMethodField(
        help_text="the account's limits: past one, adding is a 409 quota_exceeded"
    )

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "display_name",
            "timezone",
            "display_currency",
            "default_exchange",
            "date_joined",
            "quotas",
        ]
        read_only_fields = ["id", "email", "date_joined"]

    @extend_schema_field(QuotasSerializer)
    def get_quotas(self, user: User) -> dict:
        return quota_summary(user=user)


class RegisteredSerializer(serializers.Serializer):
    """What registering answers: the new user and a JWT pair (documentation of the response)."""

    user = UserSerializer()
    refresh = serializers.CharField()
    access = serializers.CharField()


class RegisterSerializer(StrictSerializer):
    # 254: the longest address SMTP can deliver (RFC 5321), and the column's size.
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=4096, write_only=True, style={"input_type": "password"})
    display_name = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")


class ProfileUpdateSerializer(StrictSerializer):
    display_name = serializers.CharField(max_length=80, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False)
    display_currency = serializers.CharField(max_length=8, required=False)
    default_exchange = serializers.CharField(max_length=32, required=False)


class PreferencesSerializer(StrictSerializer):
    """PUT replaces all preferences: every field is required."""

    timezone = serializers.CharField(max_length=64)
    display_currency = serializers.CharField(max_length=8)
    default_exchange = serializers.CharField(max_length=32)


class TokenPairSerializer(serializers.Serializer):
    """What logging in answers (documentation of the response)."""

    access = serializers.CharField(help_text="JWT access token (Authorization: Bearer ...)")
    refresh = serializers.CharField(help_text="JWT refresh token, for /auth/token/refresh/ and logout")


class EmailTokenObtainPairSerializer(TokenObtainPairSerializer):
    """Token pair for email + password, with the same lock-out as the dashboard login."""

    def validate(self, attrs):
        email = attrs.get(self.username_field, "")
        if services.login_locked(email=email):
            raise serializers.ValidationError(
                {"non_field_errors": [services.locked_message()]}, code="locked"
            )
        try:
            data = super().validate(attrs)
        except Exception:
            services.login_failed(email=email)
            raise
        services.login_succeeded(email=email)
        return data


class LogoutSerializer(StrictSerializer):
    refresh = serializers.CharField()


class RefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh (rotation + blacklist of the used token), where a deleted user's token is a 401.

    simplejwt looks the user up with ``get()`` and lets ``DoesNotExist`` escape as a 500.
    """

    def validate(self, attrs):
        try:
            return super().validate(attrs)
        except get_user_model().DoesNotExist:
            raise AuthenticationFailed(
                "No active account found for the given token.", "no_active_account"
            ) from None
