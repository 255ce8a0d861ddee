"""Market-data API: thin views over selectors/services (``/api/v1/market-data/``)."""

from __future__ import annotations

import orjson
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.backtests.engine.candles import COLUMNS as CANDLE_COLUMNS
from apps.core.api import response_cache
from apps.marketdata import jobs, live, selectors, services
from apps.marketdata.api import serializers as s
from apps.marketdata.api.renderers import FastJSONRenderer, candle_rows_json
from apps.marketdata.models import ImportJob, Subscription

MARKET_PARAMS = [
    OpenApiParameter("exchange", str, description="ccxt exchange id (default binance)"),
    OpenApiParameter("symbol", str, required=True, description="e.g. BTC/USDT"),
]
CANDLE_PARAMS = [
    *MARKET_PARAMS,
    OpenApiParameter("timeframe", str, description="1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M"),
    OpenApiParameter("start", str, description="ISO-8601 or ms; inclusive"),
    OpenApiParameter("end", str, description="ISO-8601 or ms; exclusive"),
    OpenApiParameter("limit", int, description="newest N candles in range, 1..5000 (default 1000)"),
]


OHLC_PARAMS = [
    *CANDLE_PARAMS,
    OpenApiParameter(
        "live",
        bool,
        description="end at the current price (offline: the replay feed's moment), the last candle forming "
        "at it; adds the ticker used. Not with start/end.",
    ),
]


def _query(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class MarketViewSet(viewsets.ReadOnlyModelViewSet):
    """The market catalog; filter with ``?exchange=&quote=&type=&search=``."""

    serializer_class = s.MarketSerializer
    filter_backends: list = []

    list = response_cache.cached_read(mixins.ListModelMixin.list)
    retrieve = response_cache.cached_read(mixins.RetrieveModelMixin.retrieve)

    def get_queryset(self):
        params = self.request.query_params
        return selectors.market_list(
            exchange=params.get("exchange"),
            quote=params.get("quote"),
            type=params.get("type"),
            search=params.get("search"),
        )


class CandlesView(APIView):
    """Candles as rows ``[timestamp_ms, open, high, low, close, volume]`` (newest ``limit`` in range)."""

    @extend_schema(parameters=CANDLE_PARAMS, responses=dict)
    def get(self, request: Request) -> HttpResponse:
        q = _query(s.CandleQuerySerializer, request)
        candles = selectors.candles(**q)
        head = orjson.dumps(
            {
                "exchange": q["exchange"],
                "symbol": q["symbol"],
                "timeframe": q["timeframe"],
                "source_timeframe": candles.source_timeframe,
                "count": len(candles),
                "columns": ["timestamp", "open", "high", "low", "close", "volume"],
            }
        )
        rows = candle_rows_json([candles.timestamp, *(getattr(candles, c) for c in CANDLE_COLUMNS)])
        # The JSON is assembled directly (see candle_rows_json): no per-row Python objects.
        return HttpResponse(head[:-1] + b',"candles":' + rows + b"}", content_type="application/json")


class OhlcView(APIView):
    """Candles as columns (what Plotly wants): ``{"timestamp": [...], "open": [...], ...}``."""

    renderer_classes = [FastJSONRenderer, BrowsableAPIRenderer]

    @extend_schema(parameters=OHLC_PARAMS, responses=dict)
    def get(self, request: Request) -> Response:
        q = _query(s.OhlcQuerySerializer, request)
        if q.pop("live"):
            chart = live.chart_candles(
                exchange=q["exchange"], symbol=q["symbol"], timeframe=q["timeframe"], limit=q["limit"]
            )
            return Response(
                {
                    "exchange": q["exchange"],
                    "symbol": q["symbol"],
                    "timeframe": q["timeframe"],
                    "source_timeframe": chart["source_timeframe"],
                    "count": len(chart["candles"]["timestamp"]),
                    **chart["candles"],
                    "ticker": chart["ticker"],
                }
            )
        candles = selectors.candles(**q)
        return Response(
            {
                "exchange": q["exchange"],
                "symbol": q["symbol"],
                "timeframe": q["timeframe"],
                "source_timeframe": candles.source_timeframe,
                "count": len(candles),
                "timestamp": candles.timestamp,
                **{name: getattr(candles, name) for name in CANDLE_COLUMNS},
            }
        )


class GapsView(APIView):
    """Missing candles between the first and last stored candle in range."""

    @extend_schema(parameters=CANDLE_PARAMS[:-1], responses=dict)
    def get(self, request: Request) -> Response:
        return Response(selectors.gap_report(**_query(s.GapQuerySerializer, request)).as_dict())


class PriceView(APIView):
    @extend_schema(parameters=MARKET_PARAMS, responses=dict)
    def get(self, request: Request) -> Response:
        quote = live.price_quote(**_query(s.MarketQuerySerializer, request))
        return Response(
            {
                "exchange": quote.exchange,
                "symbol": quote.symbol,
                "price": str(quote.price),
                "timestamp": quote.timestamp,
                "source": quote.source,
            }
        )


class TickerView(APIView):
    """Last price and 24h statistics (``source``: live or replay)."""

    @extend_schema(parameters=MARKET_PARAMS, responses=dict)
    def get(self, request: Request) -> Response:
        return Response(live.ticker(**_query(s.MarketQuerySerializer, request)))


class OrderBookView(APIView):
    @extend_schema(parameters=[*MARKET_PARAMS, OpenApiParameter("limit", int)], responses=dict)
    def get(self, request: Request) -> Response:
        return Response(live.order_book(**_query(s.DepthQuerySerializer, request)))


class TradesView(APIView):
    @extend_schema(parameters=[*MARKET_PARAMS, OpenApiParameter("limit", int)], responses=dict)
    def get(self, request: Request) -> Response:
        return Response(live.trades(**_query(s.DepthQuerySerializer, request)))


class StatsView(APIView):
    """24h statistics for one market (``?symbol=``) ."""

    @extend_schema(parameters=MARKET_PARAMS, responses=dict)
    def get(self, request: Request) -> Response:
        return Response(live.ticker(**_query(s.MarketQuerySerializer, request)))


class WatchedStatsView(APIView):
    """24h statistics for every market the user watches."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response({"results": live.watched_stats(user=request.user)})


class OverviewView(APIView):
    """What is stored per market and timeframe (first/last candle, count), plus watched prices."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response(
            {"stored": selectors.store_overview(), "watched": live.watched_stats(user=request.user)}
        )


class SubscriptionViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The user's watchlist (owner-scoped: another user's subscription is a 404)."""

    serializer_class = s.SubscriptionSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Subscription.objects.none()
        return selectors.subscription_list(user=self.request.user)

    def get_serializer_class(self):
        if self.action in {"update", "partial_update"}:
            return s.SubscriptionUpdateSerializer
        return s.SubscriptionSerializer

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.subscription_create(
            user=self.request.user,
            exchange=data["exchange"],
            symbol=data["symbol"],
            timeframe=data.get("timeframe", "1h"),
            note=data.get("note", ""),
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        services.subscription_update(
            subscription=serializer.instance, timeframe=data.get("timeframe"), note=data.get("note")
        )

    def update(self, request, *args, **kwargs):
        super().update(request, *args, **kwargs)
        return Response(s.SubscriptionSerializer(self.get_object()).data)

    def perform_destroy(self, instance):
        services.subscription_delete(subscription=instance)


class ImportJobViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Candle import (file upload) and download jobs; progress arrives as ``marketdata.job`` events."""

    serializer_class = s.ImportJobSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return ImportJob.objects.none()
        return selectors.import_job_list(user=self.request.user)

    @extend_schema(request=s.ImportJobCreateSerializer, responses={201: s.ImportJobSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        form = s.ImportJobCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        job = jobs.job_submit(
            user=request.user,
            kind=data["kind"],
            exchange=data["exchange"],
            symbol=data["symbol"],
            timeframe=data["timeframe"],
            upload=data.get("file"),
            start=data.get("start"),
            end=data.get("end"),
        )
        return Response(s.ImportJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: s.ImportJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        """Cancel the job: a pending one at once, a running one at its next page or chunk (409 if finished)."""
        job = jobs.job_cancel(job=selectors.import_job_get(user=request.user, pk=pk))
        return Response(s.ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.TimeframesSerializer)
    @action(detail=False, methods=["get"], pagination_class=None)
    def timeframes(self, request: Request) -> Response:
        from apps.marketdata.timeframes import TIMEFRAMES

        return Response({"timeframes": list(TIMEFRAMES)})
