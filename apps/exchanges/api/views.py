"""Exchanges API (``/api/v1/exchanges/``): thin views over selectors and services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.errors import ValidationFailed
from apps.exchanges import selectors, services
from apps.exchanges.api import serializers as s
from apps.exchanges.catalog import SUPPORTED_EXCHANGES
from apps.exchanges.models import ExchangeConnection


class ConnectionViewSet(viewsets.GenericViewSet):
    """The user's exchange connections. Secrets are write-only; deleting is a soft delete."""

    serializer_class = s.ConnectionSerializer
    queryset = ExchangeConnection.objects.none()  # for the schema; get_queryset scopes to the user
    filterset_fields = ["exchange", "status"]
    ordering_fields = ["created_at", "label", "exchange", "status"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ExchangeConnection.objects.none()
        return selectors.connection_list(user=self.request.user)

    def _connection(self, pk):
        try:
            pk = int(pk)
        except (TypeError, ValueError):
            pk = 0
        return selectors.connection_get(user=self.request.user, pk=pk)

    def list(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(s.ConnectionSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk=None) -> Response:
        return Response(s.ConnectionSerializer(self._connection(pk)).data)

    @extend_schema(request=s.ConnectionWriteSerializer, responses={201: s.ConnectionSerializer})
    def create(self, request: Request) -> Response:
        data = s.ConnectionWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        connection = services.connection_create(user=request.user, **data.validated_data)
        return Response(s.ConnectionSerializer(connection).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ConnectionUpdateSerializer, responses=s.ConnectionSerializer)
    def update(self, request: Request, pk=None, *, partial: bool = False) -> Response:
        """PUT: ``label`` and ``testnet`` required; PATCH: any field."""
        connection = self._connection(pk)
        if isinstance(request.data, dict) and "exchange" in request.data:
            raise ValidationFailed(
                "The exchange of a connection cannot change; create a new connection.",
                fields={"exchange": "read-only"},
            )
        data = s.ConnectionUpdateSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        connection = services.connection_update(connection=connection, **data.validated_data)
        return Response(s.ConnectionSerializer(connection).data)

    @extend_schema(request=s.ConnectionUpdateSerializer, responses=s.ConnectionSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        return self.update(request, pk, partial=True)

    def destroy(self, request: Request, pk=None) -> Response:
        services.connection_delete(connection=self._connection(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=s.CheckSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk=None) -> Response:
        """Check the key live through the gateway (10 s timeout); updates the status."""
        connection = self._connection(pk)
        check = services.connection_test(connection=connection)
        return Response(
            {"ok": check.ok, "message": check.message, "connection": s.ConnectionSerializer(connection).data}
        )

    @extend_schema(responses=s.AccountBalanceSerializer)
    @action(detail=True, methods=["get"])
    def balance(self, request: Request, pk=None) -> Response:
        """The exchange account's balances (non-zero assets)."""
        balances = services.connection_balance(connection=self._connection(pk))
        rows = [b.to_dict() for b in balances.balances.values()]
        return Response({"timestamp": balances.timestamp, "balances": rows})


class SupportedExchangesView(APIView):
    """Exchanges a connection can be made to, with per-exchange help for the form."""

    @extend_schema(responses=s.SupportedExchangesSerializer)
    def get(self, request: Request) -> Response:
        return Response({"results": [info.to_dict() for info in SUPPORTED_EXCHANGES.values()]})


class PaperAccountView(APIView):
    """The user's paper account (``?bot_id=`` for a bot's own account) with its balances."""

    @extend_schema(parameters=[s.PaperBotQuerySerializer], responses=s.PaperAccountSerializer)
    def get(self, request: Request) -> Response:
        params = {key: value for key, value in request.query_params.items() if value != ""}
        query = s.PaperBotQuerySerializer(data=params)
        query.is_valid(raise_exception=True)
        account = services.paper_account_get_or_create(
            user=request.user, bot_id=query.validated_data.get("bot_id")
        )
        return Response(s.PaperAccountSerializer(account).data)


class PaperResetView(APIView):
    """Reset the paper account to its initial balances, or to new ones given as ``balances``.

    ``market_type`` switches it between spot and USD-M futures and ``funding_rate``
    sets the futures' constant funding rate (null: the stored history), with the reset.
    """

    throttle_scope = "trading"  # cancels the account's orders (apps.core.api.throttling)

    @extend_schema(request=s.PaperResetSerializer, responses=s.PaperAccountSerializer)
    def post(self, request: Request) -> Response:
        data = s.PaperResetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = services.paper_account_get_or_create(
            user=request.user, bot_id=data.validated_data.get("bot_id")
        )
        settings = {k: v for k, v in data.validated_data.items() if k in ("market_type", "funding_rate")}
        if "balances" in data.validated_data:
            account = services.paper_account_set_balances(
                account=account, balances=data.validated_data["balances"], settings=settings
            )
        else:
            account = services.paper_account_restart(account=account, settings=settings)
        return Response(s.PaperAccountSerializer(account).data)
