"""Bots API (``/api/v1/bots/``): thin views over ``selectors`` and ``services``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from apps.bots import selectors, services
from apps.bots.api.serializers import BotInputSerializer, BotSerializer
from apps.bots.models import Bot


class BotViewSet(viewsets.GenericViewSet):
    """The user's bots: list, create, read, change (PATCH) and delete (stopped bots only)."""

    serializer_class = BotSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Bot.objects.none()
        return selectors.bot_list(user=self.request.user)

    def _input(self, request: Request, *, partial: bool) -> dict:
        serializer = BotInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return serializer.to_service_kwargs()

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(BotSerializer(page, many=True).data)

    @extend_schema(request=BotInputSerializer, responses={201: BotSerializer})
    def create(self, request: Request) -> Response:
        bot = services.bot_create(user=request.user, **self._input(request, partial=False))
        return Response(BotSerializer(bot).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(BotSerializer(selectors.bot_get(user=request.user, pk=pk)).data)

    @extend_schema(request=BotInputSerializer, responses=BotSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        bot = selectors.bot_get(user=request.user, pk=pk)
        bot = services.bot_update(bot=bot, **self._input(request, partial=True))
        return Response(BotSerializer(bot).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.bot_delete(bot=selectors.bot_get(user=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
