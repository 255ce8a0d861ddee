"""Portfolio API (``/api/v1/portfolio/...``): one read-only endpoint per view of the portfolio.

Every endpoint takes strict query parameters (unknown ones are a 400 in the one
error body): ``account`` (``paper:<id>`` / ``live:<id>``; someone else's is a
404) and, where a range makes sense, ``start``/``end`` (ISO-8601) or ``days``
(30, 90, 365). Amounts are in the user's display currency (USD valued as USDT).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import response_cache
from apps.core.api.pagination import StandardPagination
from apps.orders.api.serializers import PositionSerializer
from apps.portfolio import selectors
from apps.portfolio.api import serializers as s
from apps.portfolio.models import EquitySnapshot
from apps.portfolio.selectors import Range


class EquitySnapshotViewSet(viewsets.GenericViewSet):
    """The user's equity snapshots, newest first; ``?start=&end=`` (ISO-8601) and ``?currency=``."""

    serializer_class = s.EquitySnapshotSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return EquitySnapshot.objects.none()
        return selectors.equity_snapshot_list(user=self.request.user)

    @extend_schema(parameters=[s.EquityQuerySerializer])
    def list(self, request: Request) -> Response:
        query = s.EquityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.equity_snapshot_list(user=request.user, **query.validated_data)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class PortfolioView(APIView):
    """Validate the query, resolve the account, call ``read``, serialize the answer."""

    query_serializer: type[s.AccountQuerySerializer] = s.RangeQuerySerializer
    output_serializer: type | None = None
    filter_backends: list = []
    # Served from the per-user response cache (apps/core/api/response_cache.py): only views
    # whose answer is the database's (snapshots, positions), not the candle store's.
    cached = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.output_serializer is not None and "get" not in cls.__dict__:
            # A function of its own per view: extend_schema annotates the function it is given.
            def get(self, request: Request) -> Response:
                return PortfolioView.get(self, request)

            cls.get = extend_schema(parameters=[cls.query_serializer], responses=cls.output_serializer)(get)
        if cls.cached and "get" in cls.__dict__:
            cls.get = response_cache.cached_read(cls.get)

    def query(self, request: Request) -> dict[str, Any]:
        query = self.query_serializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        data = dict(query.validated_data)
        data["account"] = selectors.account_resolve(user=request.user, key=data.get("account"))
        if "days" in data or "start" in data or "end" in data:
            days = data.pop("days", None)
            start = data.pop("start", None)
            end = data.pop("end", None)
            if days is not None:
                start = (end or timezone.now()).astimezone(UTC).replace(
                    hour=0, minute=0, second=0, microsecond=0
                ) - timedelta(days=days - 1)
            data["span"] = Range(start, end)
        return data

    def read(self, request: Request, **query: Any) -> Any:  # pragma: no cover - every view overrides it
        raise NotImplementedError

    def get(self, request: Request) -> Response:
        result = self.read(request, **self.query(request))
        return Response(self.output_serializer(result).data)


class SummaryView(PortfolioView):
    """Equity, cash, positions value, today's and total P&L (deposits and withdrawals excluded)."""

    cached = True
    query_serializer = s.AccountQuerySerializer
    output_serializer = s.SummarySerializer

    def read(self, request, **q):
        return selectors.portfolio_summary(user=request.user, **q)


class BalancesView(PortfolioView):
    """The newest balances of each account and per asset across accounts."""

    cached = True
    query_serializer = s.AccountQuerySerializer
    output_serializer = s.BalancesSerializer

    def read(self, request, **q):
        return selectors.balances(user=request.user, **q)


class ExposureView(PortfolioView):
    """Value per asset and its share of equity."""

    cached = True
    query_serializer = s.AccountQuerySerializer
    output_serializer = s.PortfolioExposureSerializer

    def read(self, request, **q):
        return selectors.exposure(user=request.user, **q)


class EquityCurveView(PortfolioView):
    """Equity over time (minute points for a day, hourly for a month, daily before)."""

    output_serializer = s.EquityCurveSerializer

    def read(self, request, **q):
        return selectors.equity_curve(user=request.user, **q)


class DrawdownView(PortfolioView):
    """Drawdown of the time-weighted equity (<= 0)."""

    output_serializer = s.DrawdownSerializer

    def read(self, request, **q):
        return selectors.drawdown_curve(user=request.user, **q)


class DailyPnlView(PortfolioView):
    """P&L per UTC day (``days=30|90|365`` or a range), deposits and withdrawals kept apart."""

    output_serializer = s.DailyPnlSerializer

    def read(self, request, **q):
        return selectors.daily_pnl(user=request.user, **q)


class MonthlyPnlView(PortfolioView):
    output_serializer = s.MonthlyPnlSerializer

    def read(self, request, **q):
        return selectors.monthly_pnl(user=request.user, **q)


class PerformanceView(PortfolioView):
    """Returns, Sharpe, Sortino, Calmar, drawdown, VaR/CVaR, volatility, beta to BTC (engine metrics)."""

    output_serializer = s.PerformanceSerializer

    def read(self, request, **q):
        return selectors.performance(user=request.user, **q)


class TradingMetricsView(PortfolioView):
    """Win rate, profit factor, average trade, expectancy, ... over round trips closed in the range."""

    output_serializer = s.TradingMetricsSerializer

    def read(self, request, **q):
        return selectors.trading_metrics(user=request.user, **q)


class TradeDistributionView(PortfolioView):
    """Histogram of trade returns."""

    query_serializer = s.DistributionQuerySerializer
    output_serializer = s.DistributionSerializer

    def read(self, request, **q):
        return selectors.trade_distribution(user=request.user, **q)


class ComparisonView(PortfolioView):
    """Trading metrics per bot or per strategy (``by=bot|strategy``)."""

    query_serializer = s.ComparisonQuerySerializer
    output_serializer = s.ComparisonSerializer

    def read(self, request, **q):
        return selectors.comparison(user=request.user, **q)


class MonthlyStrategyView(PortfolioView):
    """Per month and strategy: net P&L, trades, best symbol."""

    output_serializer = s.MonthlyStrategySerializer

    def read(self, request, **q):
        return selectors.monthly_strategy(user=request.user, **q)


class PositionsView(PortfolioView):
    """Open positions across accounts."""

    cached = True
    query_serializer = s.AccountQuerySerializer

    @extend_schema(parameters=[s.AccountQuerySerializer], responses=PositionSerializer(many=True))
    def get(self, request: Request) -> Response:
        rows = selectors.positions(user=request.user, **self.query(request))
        return Response(PositionSerializer(rows, many=True).data)


class AccountsView(PortfolioView):
    """The accounts the ``account`` filter accepts."""

    query_serializer = s.StrictSerializer  # type: ignore[assignment]

    @extend_schema(responses=s.AccountSerializer(many=True))
    def get(self, request: Request) -> Response:
        s.StrictSerializer(data=request.query_params.dict()).is_valid(raise_exception=True)
        rows = [
            {
                "account": selectors.account_key(a),
                "label": selectors.account_label(a),
                "kind": selectors.account_key(a).split(":")[0],
            }
            for a in selectors.account_list(user=request.user)
        ]
        return Response(s.AccountSerializer(rows, many=True).data)


class CashFlowListView(PortfolioView):
    """Deposits, withdrawals, opening balances and paper resets, newest first (paginated)."""

    query_serializer = s.PagedRangeQuerySerializer
    # Declared so that the schema documents the page envelope ({count, next, previous, results}).
    pagination_class = StandardPagination

    @extend_schema(parameters=[s.PagedRangeQuerySerializer], responses=s.CashFlowSerializer(many=True))
    def get(self, request: Request) -> Response:
        q = self.query(request)
        q.pop("page", None)
        q.pop("page_size", None)
        qs = selectors.cash_flow_list(user=request.user, **q)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(s.CashFlowSerializer(page, many=True).data)


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_RESPONSE = OpenApiResponse(response={"type": "string", "format": "binary"}, description="CSV (text/csv)")


def _csv(name: str, header: tuple[str, ...], rows: Iterator[list[Any]]) -> StreamingHttpResponse:
    def lines() -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


class TradesExportView(PortfolioView):
    """Every round trip closed in the range as CSV."""

    @extend_schema(parameters=[s.RangeQuerySerializer], responses={(200, "text/csv"): CSV_RESPONSE})
    def get(self, request: Request) -> StreamingHttpResponse:
        trades = selectors.trade_list(user=request.user, **self.query(request))
        rows = (
            [
                t["account"],
                t["symbol"],
                t["side"],
                _iso(t["entry_ms"]),
                _iso(t["exit_ms"]),
                repr(t["pnl"]),
                repr(t["fees"]),
                repr(t["return_pct"]),
                repr(t["duration"]),
                "" if t["bot"] is None else t["bot"],
                t["strategy"],
            ]
            for t in trades
        )
        return _csv("portfolio-trades.csv", s.TRADE_CSV_FIELDS, rows)


class DailyPnlExportView(PortfolioView):
    """Daily P&L in the range as CSV."""

    @extend_schema(parameters=[s.RangeQuerySerializer], responses={(200, "text/csv"): CSV_RESPONSE})
    def get(self, request: Request) -> StreamingHttpResponse:
        days = selectors.daily_pnl(user=request.user, **self.query(request))["days"]
        rows = ([d["day"], repr(d["close"]), repr(d["flows"]), repr(d["pnl"])] for d in days)
        return _csv("portfolio-daily-pnl.csv", s.DAILY_CSV_FIELDS, rows)
