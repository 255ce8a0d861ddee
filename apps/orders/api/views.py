"""Orders API (``/api/v1/orders/``): manual orders, cancel, positions and trades; thin over services."""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api import response_cache
from apps.orders import selectors, services
from apps.orders.api.serializers import (
    CancelAllInputSerializer,
    CancelAllSerializer,
    OrderDetailSerializer,
    OrderInputSerializer,
    OrderSerializer,
    PositionSerializer,
    TradeSerializer,
)
from apps.orders.filters import OrderFilter
from apps.orders.models import Fill, Order, Position


def _valid(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _account(request: Request, data: dict):
    return selectors.account_get(
        user=request.user,
        paper_account=data.pop("paper_account", None),
        connection=data.pop("connection", None),
    )


def _bot(request: Request, data: dict):
    bot_id = data.pop("bot", None)
    return None if bot_id is None else selectors.order_bot_get(user=request.user, pk=bot_id)


class OrderViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The user's orders; filter with ``?status=&side=&symbol=&bot=&open=``, sort with ``?ordering=``."""

    serializer_class = OrderSerializer
    # Placing and cancelling count against the stricter trading rate (apps.core.api.throttling).
    throttle_scopes = {"create": "trading", "cancel": "trading", "cancel_all": "trading"}
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_class = OrderFilter
    ordering_fields = ["created_at", "updated_at", "amount", "symbol", "status"]
    ordering = ["-created_at", "-id"]

    list = response_cache.cached_read(mixins.ListModelMixin.list)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Order.objects.none()
        return selectors.order_list(user=self.request.user)

    @extend_schema(responses=OrderDetailSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(OrderDetailSerializer(selectors.order_get(user=request.user, pk=pk)).data)

    @extend_schema(request=OrderInputSerializer, responses={201: OrderDetailSerializer})
    def create(self, request: Request) -> Response:
        """Place a manual order (validated against the market, the balance and the risk limits)."""
        data = _valid(OrderInputSerializer, request)
        account = _account(request, data)
        bot = _bot(request, data)
        order = services.order_place(owner=request.user, account=account, bot=bot, **data)
        order = selectors.order_detail(user=request.user, order=order)
        return Response(OrderDetailSerializer(order).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel an open order; a finished one is a 409."""
        order = services.order_cancel(order=selectors.order_get(user=request.user, pk=pk))
        return Response(OrderDetailSerializer(selectors.order_get(user=request.user, pk=order.pk)).data)

    @extend_schema(request=CancelAllInputSerializer, responses=CancelAllSerializer)
    @action(detail=False, methods=["post"], url_path="cancel-all")
    def cancel_all(self, request: Request) -> Response:
        """Cancel every open order, or those of one account, bot or symbol."""
        data = _valid(CancelAllInputSerializer, request)
        account = None
        if data.get("paper_account") is not None or data.get("connection") is not None:
            account = _account(request, data)
        bot = _bot(request, data)
        count = services.order_cancel_all(
            owner=request.user, account=account, bot=bot, symbol=data.get("symbol") or None
        )
        return Response({"cancelled": count})


class PositionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The user's positions per account and market."""

    serializer_class = PositionSerializer
    throttle_scopes = {"close": "trading"}
    filter_backends: list = []

    list = response_cache.cached_read(mixins.ListModelMixin.list)
    retrieve = response_cache.cached_read(mixins.RetrieveModelMixin.retrieve)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Position.objects.none()
        return selectors.position_list(user=self.request.user)

    def get_object(self) -> Position:
        return selectors.position_get(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(request=None, responses={201: OrderDetailSerializer})
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str) -> Response:
        """Close the position with a reduce-only market order."""
        position = selectors.position_get(user=request.user, pk=pk)
        order = services.position_close(owner=request.user, position=position)
        order = selectors.order_detail(user=request.user, order=order)
        return Response(OrderDetailSerializer(order).data, status=status.HTTP_201_CREATED)


class TradeViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The user's trades (fills), newest first."""

    serializer_class = TradeSerializer
    filter_backends: list = []

    list = response_cache.cached_read(mixins.ListModelMixin.list)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Fill.objects.none()
        return selectors.fill_list(user=self.request.user)
