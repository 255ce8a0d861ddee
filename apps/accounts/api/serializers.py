from __future__ import annotations

from rest_framework import serializers
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer

from apps.accounts import services
from apps.accounts.models import User


class UserSerializer(serializers.ModelSerializer):
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
        ]
        read_only_fields = ["id", "email", "date_joined"]


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    display_name = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")


class ProfileUpdateSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=80, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False)
    display_currency = serializers.CharField(max_length=8, required=False)
    default_exchange = serializers.CharField(max_length=32, required=False)


class PreferencesSerializer(serializers.Serializer):
    """PUT replaces all preferences: every field is required."""

    timezone = serializers.CharField(max_length=64)
    display_currency = serializers.CharField(max_length=8)
    default_exchange = serializers.CharField(max_length=32)


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


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()
