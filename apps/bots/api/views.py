"""Bots API (``/api/v1/bots/``): thin views over ``selectors`` and ``services``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.bots import selectors, services
from apps.bots.api.serializers import (
    BotEventSerializer,
    BotInputSerializer,
    BotPerformanceSerializer,
    BotReplayInputSerializer,
    BotReplaySerializer,
    BotSerializer,
    BotStopSerializer,
)
from apps.bots.models import Bot
from apps.core.api import response_cache
from apps.orders.api.serializers import OrderSerializer, PositionSerializer, TradeSerializer
from apps.orders.filters import OrderFilter
from apps.orders.models import Order

REPLAY_ID = OpenApiParameter(
    "replay_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="the replay's id"
)
STATUS_FILTER = OpenApiParameter(
    "status", OpenApiTypes.STR, enum=Bot.Status.values, description="only bots with this status"
)

ORDER_FILTERS = [
    OpenApiParameter(
        "status", OpenApiTypes.STR, enum=Order.Status.values, many=True, description="one or more statuses"
    ),
    OpenApiParameter("side", OpenApiTypes.STR, enum=Order.Side.values),
    OpenApiParameter("symbol", OpenApiTypes.STR, description="market, e.g. BTC/USDT"),
    OpenApiParameter(
        "open",
        OpenApiTypes.STR,
        enum=["true", "false"],
        description="true: only orders that may still fill; false: only finished ones",
    ),
]


class BotViewSet(viewsets.GenericViewSet):
    """The user's bots: list, create, read, change (PATCH) and delete (stopped bots only),
    the lifecycle actions (start, pause, resume, stop), the event log, and per bot its
    positions, orders, trades and performance."""

    serializer_class = BotSerializer
    filter_backends: list = []
    # Lifecycle actions trade (stopping cancels orders and may close the position); a replay is a
    # research job: both count against their stricter rates (apps.core.api.throttling).
    throttle_scopes = {
        "start": "trading",
        "pause": "trading",
        "resume": "trading",
        "stop": "trading",
        "replay": "research",
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Bot.objects.none()
        return selectors.bot_list(user=self.request.user)

    def _input(self, request: Request, *, partial: bool) -> dict:
        serializer = BotInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return serializer.to_service_kwargs()

    @extend_schema(parameters=[STATUS_FILTER])
    @response_cache.cached_read
    def list(self, request: Request) -> Response:
        bots = selectors.bot_list(user=request.user, status=request.query_params.get("status"))
        page = self.paginate_queryset(bots)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=BotInputSerializer, responses={201: BotSerializer})
    def create(self, request: Request) -> Response:
        bot = services.bot_create(user=request.user, **self._input(request, partial=False))
        return Response(self.get_serializer(bot).data, status=status.HTTP_201_CREATED)

    @response_cache.cached_read
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self.get_serializer(selectors.bot_get(user=request.user, pk=pk)).data)

    @extend_schema(request=BotInputSerializer, responses=BotSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        bot = selectors.bot_get(user=request.user, pk=pk)
        bot = services.bot_update(bot=bot, **self._input(request, partial=True))
        return Response(self.get_serializer(bot).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.bot_delete(bot=selectors.bot_get(user=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _lifecycle(self, request: Request, pk: str, service, **kwargs) -> Response:
        bot = service(bot=selectors.bot_get(user=request.user, pk=pk), **kwargs)
        return Response(self.get_serializer(bot).data)

    @extend_schema(request=None, responses=BotSerializer, summary="Start a stopped bot (409 otherwise)")
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, pk, services.bot_start)

    @extend_schema(request=None, responses=BotSerializer, summary="Pause a running bot")
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, pk, services.bot_pause)

    @extend_schema(request=None, responses=BotSerializer, summary="Resume a paused bot")
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, pk, services.bot_resume)

    @extend_schema(
        request=BotStopSerializer,
        responses=BotSerializer,
        summary="Stop a bot: cancel its open orders and, if asked, close its position",
    )
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str) -> Response:
        serializer = BotStopSerializer(data=request.data if request.data else {})
        serializer.is_valid(raise_exception=True)
        return self._lifecycle(request, pk, services.bot_stop, **serializer.validated_data)

    def _page(self, rows, serializer_class) -> Response:
        """One page of a bot's sub-list (events, replays, positions, orders, trades)."""
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(serializer_class(page, many=True).data)

    @extend_schema(responses=BotEventSerializer(many=True), summary="The bot's event log, newest first")
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str) -> Response:
        events = selectors.bot_event_list(bot=selectors.bot_get(user=request.user, pk=pk))
        return self._page(events, BotEventSerializer)

    @extend_schema(
        request=BotReplayInputSerializer,
        responses={202: BotReplaySerializer},
        summary="Replay the bot over a past period of stored candles (a forward test, run as a job)",
    )
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str) -> Response:
        bot = selectors.bot_get(user=request.user, pk=pk)
        serializer = BotReplayInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        replay = services.bot_replay_create(bot=bot, **serializer.validated_data)
        return Response(BotReplaySerializer(replay).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=BotReplaySerializer(many=True), summary="The bot's replays, newest first")
    @action(detail=True, methods=["get"])
    def replays(self, request: Request, pk: str) -> Response:
        replays = selectors.bot_replay_list(bot=selectors.bot_get(user=request.user, pk=pk))
        return self._page(replays, BotReplaySerializer)

    @extend_schema(
        parameters=[REPLAY_ID],
        responses=BotReplaySerializer,
        summary="One replay: status, progress and result",
    )
    @action(detail=True, methods=["get"], url_path=r"replays/(?P<replay_id>[^/.]+)")
    def replay_detail(self, request: Request, pk: str, replay_id: str) -> Response:
        replay = selectors.bot_replay_get(user=request.user, bot_id=pk, pk=replay_id)
        return Response(BotReplaySerializer(replay).data)

    @extend_schema(
        parameters=[REPLAY_ID],
        request=None,
        responses=BotReplaySerializer,
        summary="Cancel a pending or running replay",
    )
    @action(detail=True, methods=["post"], url_path=r"replays/(?P<replay_id>[^/.]+)/cancel")
    def replay_cancel(self, request: Request, pk: str, replay_id: str) -> Response:
        replay = selectors.bot_replay_get(user=request.user, bot_id=pk, pk=replay_id)
        return Response(BotReplaySerializer(services.bot_replay_cancel(replay=replay)).data)

    # ------------------------------------------------------------------ trading
    @extend_schema(responses=PositionSerializer(many=True), summary="The bot's position in its market")
    @action(detail=True, methods=["get"])
    def positions(self, request: Request, pk: str) -> Response:
        positions = selectors.bot_position_list(bot=selectors.bot_get(user=request.user, pk=pk))
        return self._page(positions, PositionSerializer)

    @extend_schema(
        parameters=ORDER_FILTERS,
        responses=OrderSerializer(many=True),
        summary="The bot's orders, newest first; filter with ?status=&side=&symbol=&open=",
    )
    @action(detail=True, methods=["get"])
    def orders(self, request: Request, pk: str) -> Response:
        orders = selectors.bot_order_list(bot=selectors.bot_get(user=request.user, pk=pk))
        # The orders API's filter, applied here by hand: the viewset's own queryset is bots.
        filterset = OrderFilter(request.query_params, queryset=orders)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        return self._page(filterset.qs, OrderSerializer)

    @extend_schema(responses=TradeSerializer(many=True), summary="The bot's trades (fills), newest first")
    @action(detail=True, methods=["get"])
    def trades(self, request: Request, pk: str) -> Response:
        fills = selectors.bot_fill_list(bot=selectors.bot_get(user=request.user, pk=pk))
        return self._page(fills, TradeSerializer)

    @extend_schema(
        responses=BotPerformanceSerializer,
        summary="The engine's metrics on the bot's fills: P&L, win rate, trades, drawdown, ...",
    )
    @action(detail=True, methods=["get"])
    def performance(self, request: Request, pk: str) -> Response:
        bot = selectors.bot_get(user=request.user, pk=pk)
        return Response(BotPerformanceSerializer(selectors.bot_performance(bot=bot)).data)
