"""Backtests API: thin views over ``services``, ``optimization`` and ``selectors``."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.backtests import optimization as optimizations
from apps.backtests import selectors, services
from apps.backtests.api import serializers as out
from apps.core.api.pagination import StandardPagination
from apps.core.errors import ValidationFailed

RUN_ORDERING = ("created_at", "finished_at", "name", "total_return", "sharpe_ratio", "max_drawdown", "status")


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationFailed("Expected a JSON object.")
    return dict(request.data)


def _paginate(view: APIView, request: Request, items, render) -> Response:
    paginator = StandardPagination()
    page = paginator.paginate_queryset(items, request, view=view)
    return paginator.get_paginated_response([render(item) for item in page])


def _accepted(payload: dict[str, Any], location: str) -> Response:
    response = Response(payload, status=status.HTTP_202_ACCEPTED)
    response["Location"] = location
    return response


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
                responses = {204: None} if method == "delete" else OpenApiTypes.OBJECT
                body = OpenApiTypes.OBJECT if method in ("post", "put", "patch") else None
                name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__.removesuffix("View")).lower()
                operation = f"backtests_{name}_{method}"
                setattr(
                    cls,
                    method,
                    extend_schema(operation_id=operation, request=body, responses=responses)(handler),
                )


# ========================================================================= runs
class RunListView(BaseView):
    def get(self, request: Request) -> Response:
        qs = selectors.backtest_list(user=request.user, filters=request.query_params)
        ordering = request.query_params.get("ordering") or "-created_at"
        if ordering.lstrip("-") not in RUN_ORDERING:
            raise ValidationFailed(
                "Unknown ordering.", fields={"ordering": [f"one of {', '.join(RUN_ORDERING)}"]}
            )
        qs = qs.order_by(ordering, "-id")
        return _paginate(self, request, qs, lambda run: out.run_detail(run, include_config=False))

    def post(self, request: Request) -> Response:
        run = services.backtest_create(user=request.user, data=_body(request))
        urls = out.run_urls(run)
        return _accepted(
            {"id": run.id, "status": run.status, "status_url": urls["status"], "url": urls["self"]},
            urls["self"],
        )


class RunDetailView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        return Response(out.run_detail(selectors.backtest_get(user=request.user, pk=pk)))

    def delete(self, request: Request, pk: str) -> Response:
        services.backtest_delete(run=selectors.backtest_get(user=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunStatusView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        return Response(out.run_status(selectors.backtest_get(user=request.user, pk=pk)))


class RunCancelView(BaseView):
    def post(self, request: Request, pk: str) -> Response:
        run = services.backtest_cancel(run=selectors.backtest_get(user=request.user, pk=pk))
        return Response(
            {"id": run.id, "status": run.status, "cancel_requested": run.cancel_requested},
            status=status.HTTP_202_ACCEPTED,
        )


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
    def get(self, request: Request, pk: str) -> Response:
        run = selectors.backtest_get(user=request.user, pk=pk)
        return Response(selectors.backtest_monte_carlo_get(run=run))

    def post(self, request: Request, pk: str) -> Response:
        run = selectors.backtest_get(user=request.user, pk=pk)
        return Response(services.backtest_monte_carlo(run=run, data=_body(request)))


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
        return _paginate(self, request, selectors.strategy_list(user=request.user), out.strategy)

    def post(self, request: Request) -> Response:
        data = _body(request)
        unknown = sorted(set(data) - {"name", "source", "description"})
        if unknown:
            raise ValidationFailed(
                f"Unknown field(s): {', '.join(unknown)}.", fields={k: ["unknown field"] for k in unknown}
            )
        if "source" not in data:
            raise ValidationFailed("source is required.", fields={"source": ["this field is required"]})
        strategy = services.strategy_create(
            user=request.user,
            source=data["source"],
            name=data.get("name"),
            description=data.get("description"),
        )
        return Response(out.strategy(strategy), status=status.HTTP_201_CREATED)


class StrategyDetailView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        return Response(out.strategy(selectors.strategy_get(user=request.user, pk=pk)))

    def patch(self, request: Request, pk: str) -> Response:
        strategy = selectors.strategy_get(user=request.user, pk=pk)
        return Response(out.strategy(services.strategy_update(strategy=strategy, data=_body(request))))

    def put(self, request: Request, pk: str) -> Response:
        strategy = selectors.strategy_get(user=request.user, pk=pk)
        data = _body(request)
        if "source" not in data:
            raise ValidationFailed("source is required.", fields={"source": ["this field is required"]})
        return Response(out.strategy(services.strategy_update(strategy=strategy, data=data)))

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
    def post(self, request: Request) -> Response:
        data = _body(request)
        source = data.get("source")
        if not isinstance(source, str):
            raise ValidationFailed("source must be a string.", fields={"source": ["this field is required"]})
        if len(source) > 200_000:
            raise ValidationFailed("source is too long.", fields={"source": ["at most 200,000 characters"]})
        return Response(services.strategy_validate(source=source).to_dict())


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
    def get(self, request: Request) -> Response:
        qs = selectors.optimization_list(user=request.user, filters=request.query_params)
        return _paginate(self, request, qs, lambda o: out.optimization(o, full=False))

    def post(self, request: Request) -> Response:
        opt = optimizations.optimization_create(user=request.user, data=_body(request))
        urls = out.optimization(opt)["urls"]
        return _accepted(
            {"id": opt.id, "status": opt.status, "status_url": urls["self"], "url": urls["self"]},
            urls["self"],
        )


class OptimizationDetailView(BaseView):
    def get(self, request: Request, pk: str) -> Response:
        return Response(out.optimization(selectors.optimization_get(user=request.user, pk=pk)))

    def delete(self, request: Request, pk: str) -> Response:
        optimizations.optimization_delete(optimization=selectors.optimization_get(user=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OptimizationCancelView(BaseView):
    def post(self, request: Request, pk: str) -> Response:
        opt = optimizations.optimization_cancel(
            optimization=selectors.optimization_get(user=request.user, pk=pk)
        )
        return Response({"id": opt.id, "status": opt.status}, status=status.HTTP_202_ACCEPTED)


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
