"""Portfolio API (``/api/v1/portfolio/``): equity history."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from apps.portfolio import selectors
from apps.portfolio.api.serializers import EquityQuerySerializer, EquitySnapshotSerializer
from apps.portfolio.models import EquitySnapshot


class EquitySnapshotViewSet(viewsets.GenericViewSet):
    """The user's equity snapshots, newest first; ``?start=&end=`` (ISO-8601) and ``?currency=``."""

    serializer_class = EquitySnapshotSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return EquitySnapshot.objects.none()
        return selectors.equity_snapshot_list(user=self.request.user)

    @extend_schema(parameters=[EquityQuerySerializer])
    def list(self, request: Request) -> Response:
        query = EquityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.equity_snapshot_list(user=request.user, **query.validated_data)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
