"""Orders API (``/api/v1/orders/``): read-only for now; placement and cancelling come with the runtime."""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import viewsets
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.response import Response

from apps.orders import selectors
from apps.orders.api.serializers import OrderDetailSerializer, OrderSerializer
from apps.orders.filters import OrderFilter
from apps.orders.models import Order


class OrderViewSet(viewsets.ReadOnlyModelViewSet):
    """The user's orders; filter with ``?status=&side=&symbol=&bot=&open=``, sort with ``?ordering=``."""

    serializer_class = OrderSerializer
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_class = OrderFilter
    ordering_fields = ["created_at", "updated_at", "amount", "symbol", "status"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Order.objects.none()
        return selectors.order_list(user=self.request.user)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(OrderDetailSerializer(selectors.order_get(user=request.user, pk=pk)).data)
