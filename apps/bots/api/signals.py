"""Signal bots API: the webhook (``/api/v1/signals/<token>/``), its rotation and the signal log.

The webhook has no session or JWT: the secret token in its path authenticates
(a wrong one is a 404), and the token is the throttling identity. The token
must not reach the logs: Django logs every 4xx/5xx answer with the request's
path, so this view logs its own answers with the token masked instead.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.bots import selectors, services
from apps.bots.models import Bot, BotSignal, BotWebhook
from apps.bots.services.signals import EXAMPLE_ALERT
from apps.core.api.exceptions import error_body
from apps.core.api.schema import ErrorBodySerializer
from apps.core.api.serializers import ModelSerializer, StrictSerializer
from apps.core.api.throttling import ApiRateThrottle
from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES

logger = logging.getLogger(__name__)


def masked_token(token: str) -> str:
    return f"{token[:6]}{'•' * 8}"


# ------------------------------------------------------------------- webhook
@extend_schema_field(
    {
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}],
        "description": "ISO 8601 (TradingView's {{timenow}}) or Unix time in seconds or milliseconds",
    }
)
class SignalTimestampField(serializers.Field):
    default_error_messages = {"invalid": "Expected an ISO 8601 time or Unix seconds/milliseconds."}

    def to_internal_value(self, data) -> datetime:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, (int, float)) or (isinstance(data, str) and data.strip().isdigit()):
            number = float(data)
            try:
                # Milliseconds from 1973 on are above 1e11; seconds stay below it until 5138.
                return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, tz=UTC)
            except (OverflowError, OSError, ValueError):
                self.fail("invalid")
        value = serializers.DateTimeField().to_internal_value(data) if isinstance(data, str) else None
        if value is None:
            self.fail("invalid")
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def to_representation(self, value):
        return value.isoformat()


class SignalInputSerializer(StrictSerializer):
    """A TradingView-style alert. ``signal_id`` or ``timestamp`` is required (replay safety)."""

    action = serializers.ChoiceField(choices=BotSignal.Action.choices)
    size = serializers.DecimalField(
        max_digits=AMOUNT_DIGITS,
        decimal_places=AMOUNT_PLACES,
        min_value=Decimal("1e-18"),
        required=False,
        help_text="amount in the base currency; default: the bot's sizing (entries), "
        "the whole position (exits)",
    )
    price = serializers.DecimalField(
        max_digits=AMOUNT_DIGITS,
        decimal_places=AMOUNT_PLACES,
        min_value=Decimal("1e-18"),
        required=False,
        help_text="a limit price; default: a market order",
    )
    signal_id = serializers.RegexField(
        r"^[\w.:@/+=-]{1,100}$",
        required=False,
        help_text="unique per alert; a signal id seen before is refused as a duplicate",
    )
    timestamp = SignalTimestampField(
        required=False, help_text=f"refused when further than {settings.SIGNAL_MAX_SKEW_SECONDS} s from now"
    )

    def validate(self, attrs):
        if not attrs.get("signal_id") and attrs.get("timestamp") is None:
            message = "Give signal_id or timestamp, so that a replayed request can be recognised."
            raise serializers.ValidationError({"signal_id": [message], "timestamp": [message]})
        return attrs


class BotSignalSerializer(ModelSerializer):
    # Plain strings in the schema: enums named "action"/"outcome" would collide with others.
    action = serializers.CharField(read_only=True, help_text=f"one of: {', '.join(BotSignal.Action.values)}")
    outcome = serializers.CharField(
        read_only=True, help_text=f"one of: {', '.join(BotSignal.Outcome.values)}"
    )
    client_order_ids = serializers.ListField(child=serializers.CharField(), read_only=True)
    order_ids = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = BotSignal
        fields = [
            "id",
            "bot",
            "received_at",
            "action",
            "signal_id",
            "signal_time",
            "outcome",
            "reason",
            "client_order_ids",
            "order_ids",
            "payload",
        ]
        read_only_fields = fields


class SignalTokenThrottle(ApiRateThrottle):
    """Requests per webhook token (``SIGNAL_THROTTLE_RATE``), counted in the Django cache."""

    def scope_for(self, request, view) -> str:
        return "signal"

    def identity(self, request, view) -> str:
        # The hash, not the token: cache keys are not a place for secrets either.
        return BotWebhook.hash_token(view.kwargs.get("token", ""))


class SignalWebhookView(APIView):
    """POST a signal to a webhook bot. The token in the path is the secret; keep it so."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [SignalTokenThrottle]
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="signal_webhook",
        summary="Receive a TradingView-style alert for a webhook bot",
        description="The token authenticates (a wrong token is a 404). Every delivery with a valid "
        "token is logged on the bot (GET /api/v1/bots/{id}/signals/). A signal_id seen "
        "before is a 409 (duplicate_signal); a timestamp outside the window a 400 "
        "(stale_signal); a bot that is not running a 409 (bot_not_running).",
        request=SignalInputSerializer,
        responses={
            200: BotSignalSerializer,
            502: OpenApiResponse(ErrorBodySerializer, "The exchange refused the order (logged)."),
            503: OpenApiResponse(ErrorBodySerializer, "No price for the market yet (logged)."),
        },
        parameters=[OpenApiParameter("token", OpenApiTypes.STR, OpenApiParameter.PATH)],
        examples=[OpenApiExample("TradingView alert message", value=EXAMPLE_ALERT, request_only=True)],
        tags=["signals"],
    )
    def post(self, request: Request, token: str) -> Response:
        bot = selectors.webhook_bot_get(token=token)
        try:
            data = request.data
        except (exceptions.ParseError, exceptions.UnsupportedMediaType) as exc:
            # Not JSON (TradingView posts a message that is not JSON as text/plain): log it too.
            services.signal_record_invalid(bot=bot, payload={}, fields={}, message=str(exc.detail))
            raise
        serializer = SignalInputSerializer(data=data)
        if not serializer.is_valid():
            services.signal_record_invalid(
                bot=bot, payload=data, fields=serializer.errors, message=_summary(serializer.errors)
            )
            raise serializers.ValidationError(serializer.errors)
        signal = services.signal_receive(bot=bot, payload=data, **serializer.validated_data)
        return Response(BotSignalSerializer(signal).data)

    def handle_exception(self, exc):
        try:
            return super().handle_exception(exc)
        except Exception:
            # Unexpected: Django would log the path, token and all. Log it masked, answer 500.
            logger.exception("signal webhook %s failed", self._masked_path())
            return Response(
                error_body("server_error", "An unexpected error occurred; it has been logged."),
                status=status.HTTP_500_INTERNAL_SERVER_ERROR,
            )

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400:
            logger.warning("signal webhook %s: %s", self._masked_path(), response.status_code)
        response._has_been_logged = True  # Django's own log line would carry the token
        return response

    def _masked_path(self) -> str:
        token = self.kwargs.get("token", "")
        return self.request.path.replace(token, masked_token(token)) if token else self.request.path


def _summary(errors: dict) -> str:
    return "; ".join(f"{field}: {' '.join(map(str, problems))}" for field, problems in errors.items())[:400]


# ------------------------------------------------------- the owner's routes
class WebhookUrlSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="the full webhook URL: shown only now, store it in the alert")
    token_hint = serializers.CharField(help_text="the token's first characters")
    rotated_at = serializers.DateTimeField()
    example_alert = serializers.DictField(help_text="a TradingView alert message body for this webhook")


def webhook_url_data(request: Request, bot: Bot, token: str) -> dict:
    from apps.bots.services.signals import webhook_path

    webhook = BotWebhook.objects.get(bot=bot)
    return {
        "url": request.build_absolute_uri(webhook_path(token)),
        "token_hint": webhook.token_hint,
        "rotated_at": webhook.rotated_at,
        "example_alert": EXAMPLE_ALERT,
    }


class BotWebhookRotateView(APIView):
    """Give the owner's webhook bot a new secret URL; the old one stops working."""

    @extend_schema(
        request=None,
        responses={200: WebhookUrlSerializer},
        summary="Rotate a webhook bot's secret URL (the answer is the only time it is shown)",
        tags=["bots"],
    )
    def post(self, request: Request, pk: int) -> Response:
        bot = selectors.bot_get(user=request.user, pk=pk)
        token = services.bot_webhook_rotate(bot=bot)
        return Response(WebhookUrlSerializer(webhook_url_data(request, bot, token)).data)


class BotSignalListView(generics.ListAPIView):
    """The webhook signals one of the owner's bots received, newest first."""

    serializer_class = BotSignalSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return BotSignal.objects.none()
        return selectors.bot_signal_list(bot=selectors.bot_get(user=self.request.user, pk=self.kwargs["pk"]))

    @extend_schema(summary="A bot's received webhook signals, newest first", tags=["bots"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)
