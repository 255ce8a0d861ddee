"""Notifications API (``/api/v1/risk/notification-channels/``, ``.../notification-deliveries/``).

Channel secrets (a webhook's signing secret, a Telegram bot token) are write-only:
answers carry only ``secret_set`` and the masked value.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.serializers import ModelSerializer, StrictSerializer
from apps.risk import notifications
from apps.risk.models import SUBSCRIBABLE_EVENTS, NotificationChannel, NotificationDelivery, NotificationEvent


# ---------------------------------------------------------------- serializers
class NotificationChannelSerializer(ModelSerializer):
    secret_set = serializers.SerializerMethodField()
    secret_masked = serializers.CharField(source="masked_secret", read_only=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS))

    class Meta:
        model = NotificationChannel
        fields = [
            "id", "kind", "name", "events", "enabled", "email", "url", "chat_id", "secret_set", "secret_masked",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_secret_set(self, channel: NotificationChannel) -> bool:
        return bool(channel.secret)


class NotificationChannelUpdateSerializer(StrictSerializer):
    """PATCH: any of these; an empty or omitted ``secret`` keeps the stored one. Types only; the rules per kind
    are in ``apps.risk.notifications``."""

    name = serializers.CharField(max_length=100)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS), max_length=10, allow_empty=False
    )
    enabled = serializers.BooleanField()
    email = serializers.EmailField(max_length=254, allow_blank=True, help_text="email channels: the address")
    url = serializers.URLField(
        max_length=500, allow_blank=True, help_text="webhooks: the http(s) URL POSTed to"
    )
    secret = serializers.CharField(
        max_length=500, allow_blank=True, write_only=True, trim_whitespace=False,
        help_text="webhooks: the signing secret (16+ characters); telegram: the bot token",
    )  # fmt: skip
    chat_id = serializers.CharField(max_length=64, allow_blank=True, help_text="telegram: the chat id")


class NotificationChannelInputSerializer(NotificationChannelUpdateSerializer):
    """POST: ``kind``, ``name`` and ``events`` are required, plus the kind's own fields."""

    kind = serializers.ChoiceField(choices=NotificationChannel.Kind.choices)
    enabled = serializers.BooleanField(default=True)
    email = serializers.EmailField(max_length=254, allow_blank=True, required=False)
    url = serializers.URLField(max_length=500, allow_blank=True, required=False)
    secret = serializers.CharField(
        max_length=500, allow_blank=True, write_only=True, required=False, trim_whitespace=False
    )
    chat_id = serializers.CharField(max_length=64, allow_blank=True, required=False)


class NoBodySerializer(StrictSerializer):
    """An action that takes no fields: any given is unknown, a non-object body is refused."""


class NotificationAttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    ok = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    duration_ms = serializers.IntegerField()


class NotificationDeliverySerializer(ModelSerializer):
    channel_name = serializers.CharField(source="channel.name", read_only=True)
    channel_kind = serializers.CharField(source="channel.kind", read_only=True)
    attempts_log = NotificationAttemptSerializer(many=True, read_only=True)
    payload = serializers.DictField(read_only=True)

    class Meta:
        model = NotificationDelivery
        fields = [
            "id", "channel", "channel_name", "channel_kind", "event", "status", "attempts", "attempts_log",
            "last_error", "next_attempt_at", "delivered_at", "created_at", "payload",
        ]  # fmt: skip
        read_only_fields = fields


# ---------------------------------------------------------------------- views
class NotificationChannelViewSet(viewsets.GenericViewSet):
    """The user's notification channels: list, create, read, change (PATCH), delete, and send a test."""

    serializer_class = NotificationChannelSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return NotificationChannel.objects.none()
        return notifications.notification_channel_list(user=self.request.user)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(NotificationChannelSerializer(page, many=True).data)

    @extend_schema(request=NotificationChannelInputSerializer, responses={201: NotificationChannelSerializer})
    def create(self, request: Request) -> Response:
        serializer = NotificationChannelInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = notifications.notification_channel_create(user=request.user, **serializer.validated_data)
        return Response(NotificationChannelSerializer(channel).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        channel = notifications.notification_channel_get(user=request.user, pk=pk)
        return Response(NotificationChannelSerializer(channel).data)

    @extend_schema(request=NotificationChannelUpdateSerializer, responses=NotificationChannelSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        channel = notifications.notification_channel_get(user=request.user, pk=pk)
        serializer = NotificationChannelUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        channel = notifications.notification_channel_update(channel=channel, **serializer.validated_data)
        return Response(NotificationChannelSerializer(channel).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        notifications.notification_channel_delete(
            channel=notifications.notification_channel_get(user=request.user, pk=pk)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={202: NotificationDeliverySerializer},
        summary="Send a test message to the channel (delivered by the worker; follow it in the deliveries)",
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str) -> Response:
        if request.data is not None and request.data != {}:
            NoBodySerializer(data=request.data).is_valid(raise_exception=True)
        delivery = notifications.notification_channel_test(
            channel=notifications.notification_channel_get(user=request.user, pk=pk)
        )
        return Response(NotificationDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


DELIVERY_FILTERS = [
    OpenApiParameter("channel", OpenApiTypes.INT, description="only this channel's deliveries"),
    OpenApiParameter(
        "status", OpenApiTypes.STR, enum=NotificationDelivery.Status.values, description="only this status"
    ),
    OpenApiParameter("event", OpenApiTypes.STR, enum=NotificationEvent.values, description="only this event"),
]


class NotificationDeliveryViewSet(viewsets.GenericViewSet):
    """Every notification sent (or being retried) to the user's channels, with each attempt."""

    serializer_class = NotificationDeliverySerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return NotificationDelivery.objects.none()
        return notifications.notification_delivery_list(user=self.request.user)

    @extend_schema(parameters=DELIVERY_FILTERS)
    def list(self, request: Request) -> Response:
        deliveries = notifications.notification_delivery_list(
            user=request.user,
            channel=request.query_params.get("channel"),
            status=request.query_params.get("status"),
            event=request.query_params.get("event"),
        )
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(NotificationDeliverySerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        delivery = notifications.notification_delivery_get(user=request.user, pk=pk)
        return Response(NotificationDeliverySerializer(delivery).data)
