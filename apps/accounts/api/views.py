from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from apps.accounts import services
from apps.accounts.api.serializers import (
    EmailTokenObtainPairSerializer,
    LogoutSerializer,
    PreferencesSerializer,
    ProfileUpdateSerializer,
    RefreshSerializer,
    RegisteredSerializer,
    RegisterSerializer,
    TokenPairSerializer,
    UserSerializer,
)
from apps.core.api import response_cache


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_scope = "login"  # per client address (apps.core.api.throttling)

    @extend_schema(request=RegisterSerializer, responses={201: RegisteredSerializer})
    def post(self, request):
        """Create an account; answers the user and a JWT pair."""
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_register(**serializer.validated_data)
        refresh = RefreshToken.for_user(user)
        return Response(
            RegisteredSerializer(
                {"user": user, "refresh": str(refresh), "access": str(refresh.access_token)}
            ).data,
            status=status.HTTP_201_CREATED,
        )


@extend_schema_view(post=extend_schema(responses={200: TokenPairSerializer}))
class LoginView(TokenObtainPairView):
    """Email + password -> access and refresh tokens."""

    serializer_class = EmailTokenObtainPairSerializer
    throttle_scope = "login"  # per client address (apps.core.api.throttling)


class RefreshView(TokenRefreshView):
    """Refresh token -> new access and refresh token; the used refresh token is revoked."""

    serializer_class = RefreshSerializer
    throttle_scope = "login"  # per client address (apps.core.api.throttling)


class LogoutView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=LogoutSerializer, responses={204: None})
    def post(self, request):
        """Revoke a refresh token."""
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.refresh_token_revoke(token=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=UserSerializer)
    @response_cache.cached_read
    def get(self, request):
        """The signed-in user's profile and preferences."""
        return Response(UserSerializer(request.user).data)

    @extend_schema(request=ProfileUpdateSerializer, responses=UserSerializer)
    def patch(self, request):
        """Change some of: display name, timezone, display currency, default exchange."""
        serializer = ProfileUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(user=request.user, **serializer.validated_data)
        return Response(UserSerializer(user).data)


class PreferencesView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=PreferencesSerializer, responses=UserSerializer)
    def put(self, request):
        """Replace the preferences (timezone, display currency, default exchange)."""
        serializer = PreferencesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(user=request.user, **serializer.validated_data)
        return Response(UserSerializer(user).data)
