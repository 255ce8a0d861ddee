"""Risk API (``/api/v1/risk/``): the user's risk profile."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.risk import selectors, services
from apps.risk.api.serializers import RiskProfileInputSerializer, RiskProfileSerializer


class RiskProfileView(APIView):
    @extend_schema(responses=RiskProfileSerializer)
    def get(self, request: Request) -> Response:
        """The user's risk limits (the defaults until first saved)."""
        return Response(RiskProfileSerializer(selectors.risk_profile_get(user=request.user)).data)

    @extend_schema(request=RiskProfileInputSerializer, responses=RiskProfileSerializer)
    def put(self, request: Request) -> Response:
        """Replace the user's risk limits."""
        serializer = RiskProfileInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        profile = services.risk_profile_update(user=request.user, **serializer.validated_data)
        return Response(RiskProfileSerializer(profile).data)
