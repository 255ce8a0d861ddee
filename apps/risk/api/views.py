"""Risk API (``/api/v1/risk/``): profile, overview, exposure, limits, alerts."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.risk import alerts, killswitch, monitoring, selectors, services
from apps.risk.api.serializers import (
    ExposureSerializer,
    RiskAlertFilterSerializer,
    RiskAlertSerializer,
    RiskLimitInputSerializer,
    RiskLimitSerializer,
    RiskOverviewSerializer,
    RiskProfileInputSerializer,
    RiskProfileSerializer,
)
from apps.risk.models import AlertSeverity, RiskAlert, RiskLimit


class RiskProfileView(APIView):
    @extend_schema(responses=RiskProfileSerializer)
    def get(self, request: Request) -> Response:
        """The user's risk limits (the defaults until first saved)."""
        return Response(RiskProfileSerializer(selectors.risk_profile_get(user=request.user)).data)

    @extend_schema(request=RiskProfileInputSerializer, responses=RiskProfileSerializer)
    def put(self, request: Request) -> Response:
        """Replace the user's risk limits.

        A changed ``kill_switch`` goes through the kill switch itself, as
        ``kill-switch/engage/`` and ``kill-switch/release/`` would: turning it on stops
        every bot and cancels every open order (audited); the same value changes nothing.
        """
        serializer = RiskProfileInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limits = dict(serializer.validated_data)
        engaged = limits.pop("kill_switch")
        profile = services.risk_profile_update(user=request.user, **limits)
        if engaged and not profile.kill_switch:
            killswitch.kill_switch_engage(user=request.user, actor=request.user, source="api")
        elif not engaged and profile.kill_switch:
            killswitch.kill_switch_release(user=request.user, actor=request.user)
        profile.refresh_from_db()
        return Response(RiskProfileSerializer(profile).data)


class RiskOverviewView(APIView):
    @extend_schema(responses=RiskOverviewSerializer)
    def get(self, request: Request) -> Response:
        """Equity, exposure, leverage, margin, daily P&L, drawdown, VaR/CVaR and the risk score, computed now."""
        return Response(RiskOverviewSerializer(monitoring.risk_overview(user=request.user)).data)


class RiskExposureView(APIView):
    @extend_schema(responses=ExposureSerializer)
    def get(self, request: Request) -> Response:
        """Exposure by asset (value and share of equity) and by position."""
        return Response(ExposureSerializer(monitoring.risk_exposure_breakdown(user=request.user)).data)


class RiskLimitViewSet(viewsets.GenericViewSet):
    """The user's limits: list, create, read, change (PATCH) and delete."""

    serializer_class = RiskLimitSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RiskLimit.objects.none()
        return selectors.risk_limit_list(user=self.request.user)

    def _input(self, request: Request, *, partial: bool) -> dict:
        serializer = RiskLimitInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.risk_limit_list(user=request.user))
        return self.get_paginated_response(RiskLimitSerializer(page, many=True).data)

    @extend_schema(request=RiskLimitInputSerializer, responses={201: RiskLimitSerializer})
    def create(self, request: Request) -> Response:
        limit = services.risk_limit_create(user=request.user, **self._input(request, partial=False))
        return Response(RiskLimitSerializer(limit).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(RiskLimitSerializer(selectors.risk_limit_get(user=request.user, pk=pk)).data)

    @extend_schema(request=RiskLimitInputSerializer, responses=RiskLimitSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        limit = selectors.risk_limit_get(user=request.user, pk=pk)
        limit = services.risk_limit_update(limit=limit, **self._input(request, partial=True))
        return Response(RiskLimitSerializer(limit).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.risk_limit_delete(limit=selectors.risk_limit_get(user=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RiskAlertViewSet(viewsets.GenericViewSet):
    """The user's alerts (newest first, filtered, paginated) and acknowledging one."""

    serializer_class = RiskAlertSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RiskAlert.objects.none()
        return selectors.risk_alert_list(user=self.request.user)

    @extend_schema(
        parameters=[
            OpenApiParameter("severity", OpenApiTypes.STR, enum=AlertSeverity.values),
            OpenApiParameter("kind", OpenApiTypes.STR, description="a limit kind, or kill_switch"),
            OpenApiParameter(
                "state", OpenApiTypes.STR, enum=["active", "resolved", "acknowledged", "unacknowledged"]
            ),
        ]
    )
    def list(self, request: Request) -> Response:
        filters = RiskAlertFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = {k: v for k, v in filters.validated_data.items() if k not in ("page", "page_size")}
        page = self.paginate_queryset(selectors.risk_alert_list(user=request.user, **data))
        return self.get_paginated_response(RiskAlertSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(RiskAlertSerializer(selectors.risk_alert_get(user=request.user, pk=pk)).data)

    @extend_schema(request=None, responses=RiskAlertSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        """Mark the alert as seen (acknowledging twice keeps the first time)."""
        alert = alerts.alert_acknowledge(alert=selectors.risk_alert_get(user=request.user, pk=pk))
        return Response(RiskAlertSerializer(alert).data)
