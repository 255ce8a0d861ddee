"""Backtests API: input serializer (types) -> service (typed keyword arguments) -> output.

Thin views over ``services``, ``optimization`` and ``selectors``; domain errors
become the one error body in ``apps.core.api.exceptions``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.backtests import optimization as optimizations
from apps.backtests import selectors, services
from apps.backtests.api import serializers as out
from apps.backtests.api.serializers import (
    CodeCheckSerializer,
    JobCancelledSerializer,
    MonteCarloSerializer,
    OptimizationCreateSerializer,
    RunAcceptedSerializer,
    RunCreateSerializer,
    RunStatusSerializer,
    StrategyCreateSerializer,
    StrategySerializer,
    StrategyUpdateSerializer,
    StrategyValidateSerializer,
)
from apps.core.api.pagination import StandardPagination
from apps.core.errors import ValidationFailed

RUN_ORDERING = ("created_at", "finished_at", "name", "total_return", "sharpe_ratio", "max_drawdown", "status")


def _valid(serializer_class, request: Request, *, partial: bool = False) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _paginate(view: APIView, request: Request, items, render) -> Response:
    paginator = StandardPagination()
    page = paginator.paginate_queryset(items, request, view=view)
    return paginator.get_paginated_response([render(item) for item in page])


def _accepted(job, urls: dict[str, str]) -> Response:
    payload = {"id": job.id, "status": job.status, "status_url": urls["status"], "url": urls["self"]}
    response = Response(RunAcceptedSerializer(payload).data, status=status.HTTP_202_ACCEPTED)
    response["Location"] = urls["self"]
    return response


def _cancelled(job) -> Response:
    return Response(JobCancelledSerializer(job).data, status=status.HTTP_202_ACCEPTED)


CSV_RESPONSE = OpenApiResponse(
    response={"type": "string", "format": "binary"}, description="CSV, one row per trade (text/csv)"
)


class BaseView(APIView):
    # These views filter and order in the selectors; the global DRF backends would only add noise.
    filter_backends: list = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Bodies without their own serializer are free-form JSON objects in the schema, instead of
        # letting the generator guess a serializer per view.
        super().__init_subclass__(**kwargs)
        for method in ("get", "post", "put", "patch", "delete"):
            handler = cls.__dict__.get(method)
            if handler is not None:
                name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__.removesuffix("View")).lower()
                schema: dict[str, Any] = {"operation_id": f"backtests_{name}_{method}"}
                # A handler with its own @extend_schema keeps its request and responses.
                if "schema" not in getattr(handler, "kwargs", {}):
                    schema["responses"] = {204: None} if method == "delete" else OpenApiTypes.OBJECT
                    schema["request"] = OpenApiTypes.OBJECT if method in ("post", "put", "patch") else None
                setattr(cls, method, extend_schema(**schema)(handler))


# ========================================================================= runs
class RunListView(BaseView):
    throttle_scopes = {"post": "research"}  # submitting (apps.core.api.throttling)

    def get(self, request: Request) -> Response:
        qs = selectors.backtest_list(user=request.user, filters=request.query_params)
        ordering = request.query_params.get("ordering") or "-created_at"
        if ordering.lstrip("-") not in RUN_ORDERING:
            raise ValidationFailed(
                "Unknown ordering.", fields={"ordering": [f"one of {', '.join(RUN_ORDERING)}"]}
            )
        qs = qs.order_by(ordering, "-id")
        return _paginate(self, request, qs, lambda run: out.run_detail(run, include_config=False))

    @extend_schema(request=RunCreateSerializer, responses={202: RunAcceptedSerializer})
    def post(self, request: Request) -> Response:
        run = services.backtest_create(user=request.user, data=_valid(RunCreateSerializer, request))
        return _accepted(run, out.run_urls(run))


class RunDetailView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        return Response(out.run_detail(selectors.backtest_get(user=request.user, pk=pk)))

    def delete(self, request: Request, pk: str) -> Response:
        services.backtest_delete(run=selectors.backtest_get(user=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunStatusView(BaseView):
    @extend_schema(responses=RunStatusSerializer)
    def get(self, request: Request, pk: str) -> Response:
        return Response(out.run_status(selectors.backtest_get(user=request.user, pk=pk)))


class RunCancelView(BaseView):
    @extend_schema(request=None, responses={202: JobCancelledSerializer})
    def post(self, request: Request, pk: str) -> Response:
        return _cancelled(services.backtest_cancel(run=selectors.backtest_get(user=request.user, pk=pk)))


class RunResultsView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        run = selectors.backtest_get(user=request.user, pk=pk)
        return Response(selectors.backtest_results(run=run))


class RunTradesView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        run = selectors.backtest_get(user=request.user, pk=pk)
        qs = selectors.backtest_trades(run=run, filters=request.query_params)
        return _paginate(self, request, qs, out.trade)


class _Echo:
    def write(self, value: str) -> str:
        return value


class RunTradesExportView(BaseView):
    @extend_schema(responses={(200, "text/csv"): CSV_RESPONSE})
    def get(self, request: Request, pk: str) -> StreamingHttpResponse:
        run = selectors.backtest_get(user=request.user, pk=pk)
        qs = selectors.backtest_trades(run=run, filters=request.query_params)

        def rows() -> Iterator[str]:
            writer = csv.writer(_Echo())
            yield writer.writerow(out.TRADE_CSV_FIELDS)
            # iterator(): stream rows from the database cursor, never the whole table in memory.
            for trade in qs.iterator(chunk_size=2000):
                item = out.trade(trade)
                yield writer.writerow(["" if item[f] is None else item[f] for f in out.TRADE_CSV_FIELDS])

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="backtest-{run.id}-trades.csv"'
        return response


class RunEquityView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        run = selectors.backtest_get(user=request.user, pk=pk)
        q = request.query_params
        return Response(
            selectors.backtest_equity(run=run, points=q.get("points"), start=q.get("start"), end=q.get("end"))
        )


class RunPositionsView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        run = selectors.backtest_get(user=request.user, pk=pk)
        q = request.query_params
        return Response(selectors.backtest_positions(run=run, start=q.get("start"), end=q.get("end")))


class RunCandlesView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        run = selectors.backtest_get(user=request.user, pk=pk)
        selectors.backtest_results(run=run)  # 409 unless completed
        return Response(selectors.backtest_candles(run=run, points=request.query_params.get("points")))


class RunMonteCarloView(BaseView):
    throttle_scopes = {"post": "research"}  # simulating runs in the request

    def get(self, request: Request, pk: str) -> Response:
        run = selectors.backtest_get(user=request.user, pk=pk)
        return Response(selectors.backtest_monte_carlo_get(run=run))

    @extend_schema(request=MonteCarloSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, pk: str) -> Response:
        run = selectors.backtest_get(user=request.user, pk=pk)
        return Response(services.backtest_monte_carlo(run=run, **_valid(MonteCarloSerializer, request)))


class RunCompareView(BaseView):
    def get(self, request: Request) -> Response:
        return Response(
            {"runs": selectors.backtest_compare(user=request.user, ids=request.query_params.get("ids"))}
        )


# =================================================================== strategies
class BuiltinStrategyListView(BaseView):
    def get(self, request: Request) -> Response:
        items = selectors.builtin_strategies()
        return Response({"count": len(items), "results": items})


class StrategyListView(BaseView):
    def get(self, request: Request) -> Response:
        strategies = selectors.strategy_list(user=request.user)
        return _paginate(self, request, strategies, lambda strategy: StrategySerializer(strategy).data)

    @extend_schema(request=StrategyCreateSerializer, responses={201: StrategySerializer})
    def post(self, request: Request) -> Response:
        strategy = services.strategy_create(user=request.user, **_valid(StrategyCreateSerializer, request))
        return Response(StrategySerializer(strategy).data, status=status.HTTP_201_CREATED)


class StrategyDetailView(BaseView):
    @extend_schema(responses=StrategySerializer)
    def get(self, request: Request, pk: str) -> Response:
        return Response(StrategySerializer(selectors.strategy_get(user=request.user, pk=pk)).data)

    @extend_schema(request=StrategyUpdateSerializer, responses=StrategySerializer)
    def patch(self, request: Request, pk: str) -> Response:
        strategy = selectors.strategy_get(user=request.user, pk=pk)
        data = _valid(StrategyUpdateSerializer, request, partial=True)
        return Response(StrategySerializer(services.strategy_update(strategy=strategy, **data)).data)

    @extend_schema(request=StrategyUpdateSerializer, responses=StrategySerializer)
    def put(self, request: Request, pk: str) -> Response:
        strategy = selectors.strategy_get(user=request.user, pk=pk)
        data = _valid(StrategyUpdateSerializer, request)
        return Response(StrategySerializer(services.strategy_update(strategy=strategy, **data)).data)

    def delete(self, request: Request, pk: str) -> Response:
        services.strategy_delete(strategy=selectors.strategy_get(user=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class StrategyVersionListView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        strategy = selectors.strategy_get(user=request.user, pk=pk)
        return _paginate(self, request, strategy.versions.order_by("-version"), out.strategy_version)


class StrategyVersionDetailView(BaseView):
    def get(self, request: Request, pk: str, version: str) -> Response:
        strategy = selectors.strategy_get(user=request.user, pk=pk)
        return Response(
            out.strategy_version(selectors.strategy_version_get(strategy=strategy, version=version))
        )


class StrategyValidateView(BaseView):
    @extend_schema(request=StrategyValidateSerializer, responses=CodeCheckSerializer)
    def post(self, request: Request) -> Response:
        source = _valid(StrategyValidateSerializer, request)["source"]
        return Response(CodeCheckSerializer(services.strategy_validate(source=source).to_dict()).data)


class StrategyPerformanceView(BaseView):
    def get(self, request: Request) -> Response:
        q = request.query_params
        rows = selectors.strategy_performance(
            user=request.user, symbol=q.get("symbol"), timeframe=q.get("timeframe")
        )
        for row in rows:
            row["last_run_at"] = out._iso(row["last_run_at"])
        return Response({"count": len(rows), "results": rows})


# ================================================================ optimizations
class OptimizationListView(BaseView):
    throttle_scopes = {"post": "research"}

    def get(self, request: Request) -> Response:
        qs = selectors.optimization_list(user=request.user, filters=request.query_params)
        return _paginate(self, request, qs, lambda o: out.optimization(o, full=False))

    @extend_schema(request=OptimizationCreateSerializer, responses={202: RunAcceptedSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(OptimizationCreateSerializer, request)
        opt = optimizations.optimization_create(user=request.user, data=data)
        urls = out.optimization(opt)["urls"]
        return _accepted(opt, {**urls, "status": urls["self"]})


class OptimizationDetailView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        return Response(out.optimization(selectors.optimization_get(user=request.user, pk=pk)))

    def delete(self, request: Request, pk: str) -> Response:
        optimizations.optimization_delete(optimization=selectors.optimization_get(user=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OptimizationCancelView(BaseView):
    @extend_schema(request=None, responses={202: JobCancelledSerializer})
    def post(self, request: Request, pk: str) -> Response:
        optimization = selectors.optimization_get(user=request.user, pk=pk)
        return _cancelled(optimizations.optimization_cancel(optimization=optimization))


class OptimizationResultsView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        opt = selectors.optimization_get(user=request.user, pk=pk)
        q = request.query_params
        rows = selectors.optimization_trials(
            optimization=opt, ordering=q.get("ordering"), window=q.get("window")
        )
        return _paginate(self, request, rows, lambda row: row)


class OptimizationHeatmapView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        opt = selectors.optimization_get(user=request.user, pk=pk)
        q = request.query_params
        return Response(
            selectors.optimization_heatmap(
                optimization=opt, x=q.get("x"), y=q.get("y"), metric=q.get("metric"), window=q.get("window")
            )
        )
