"""Kill switch API (``/api/v1/risk/kill-switch/``): status, engage, release, and the audit of every press."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.serializers import ModelSerializer, StrictSerializer
from apps.risk import killswitch
from apps.risk.models import KillSwitchActivation
from apps.risk.selectors import kill_switch_is_on


class KillSwitchFailureSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["stop_bots", "cancel_order", "close_position"])
    target = serializers.CharField()
    account = serializers.CharField()
    error = serializers.CharField()


class KillSwitchClosedSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    symbol = serializers.CharField()
    order = serializers.IntegerField()
    status = serializers.CharField()


class KillSwitchActivationSerializer(ModelSerializer):
    engaged = serializers.BooleanField(source="is_active", read_only=True)
    engaged_by = serializers.EmailField(
        source="engaged_by.email", read_only=True, allow_null=True, default=None
    )
    released_by = serializers.EmailField(
        source="released_by.email", read_only=True, allow_null=True, default=None
    )
    bots_stopped = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    orders_cancelled = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    positions_closed = KillSwitchClosedSerializer(many=True, read_only=True)
    failures = KillSwitchFailureSerializer(many=True, read_only=True)

    class Meta:
        model = KillSwitchActivation
        fields = [
            "id", "engaged", "engaged_at", "engaged_by", "source", "close_positions", "bots_stopped",
            "orders_cancelled", "positions_closed", "failures", "attempts", "last_attempt_at", "retry",
            "next_retry_at", "released_at", "released_by",
        ]  # fmt: skip
        read_only_fields = fields


class KillSwitchStatusSerializer(serializers.Serializer):
    engaged = serializers.BooleanField()
    activation = KillSwitchActivationSerializer(allow_null=True)


def _must_be_true(value: bool) -> bool:
    if value is not True:
        raise serializers.ValidationError("Set confirm to true: this acts on every bot, order and position.")
    return value


class KillSwitchEngageSerializer(StrictSerializer):
    confirm = serializers.BooleanField(help_text="must be true", validators=[_must_be_true])
    close_positions = serializers.BooleanField(
        default=False, help_text="also close every open position with a reduce-only market order"
    )


class KillSwitchReleaseSerializer(StrictSerializer):
    confirm = serializers.BooleanField(help_text="must be true", validators=[_must_be_true])


class KillSwitchView(APIView):
    @extend_schema(
        responses=KillSwitchStatusSerializer, summary="Whether the kill switch is on, and the press in force"
    )
    def get(self, request: Request) -> Response:
        activation = killswitch.kill_switch_active(user=request.user)
        body = {"engaged": kill_switch_is_on(user_id=request.user.pk), "activation": activation}
        return Response(KillSwitchStatusSerializer(body).data)


class KillSwitchEngageView(APIView):
    @extend_schema(
        request=KillSwitchEngageSerializer,
        responses={201: KillSwitchActivationSerializer, 200: KillSwitchActivationSerializer},
        summary="Emergency stop: stop all bots, cancel every open order, optionally close every position",
        description="201 for a new press; 200 when it is already on (another pass runs at once, nothing twice). "
        "Failed actions are listed in `failures` and retried by the worker.",
    )
    def post(self, request: Request) -> Response:
        serializer = KillSwitchEngageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        activation, created = killswitch.kill_switch_engage(
            user=request.user,
            actor=request.user,
            close_positions=serializer.validated_data["close_positions"],
            source="api",
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(KillSwitchActivationSerializer(activation).data, status=code)


class KillSwitchReleaseView(APIView):
    @extend_schema(
        request=KillSwitchReleaseSerializer,
        responses=KillSwitchActivationSerializer,
        summary="Release the kill switch: orders are accepted again (stopped bots stay stopped); 409 when it is off",
    )
    def post(self, request: Request) -> Response:
        KillSwitchReleaseSerializer(data=request.data).is_valid(raise_exception=True)
        activation = killswitch.kill_switch_release(user=request.user, actor=request.user)
        return Response(KillSwitchActivationSerializer(activation).data)


class KillSwitchActivationViewSet(viewsets.ReadOnlyModelViewSet):
    """Every press of the kill switch: who, when, what was stopped, cancelled, closed, and what failed."""

    serializer_class = KillSwitchActivationSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return KillSwitchActivation.objects.none()
        return killswitch.kill_switch_activation_list(user=self.request.user)

    def retrieve(self, request: Request, pk: str) -> Response:
        activation = killswitch.kill_switch_activation_get(user=request.user, pk=pk)
        return Response(KillSwitchActivationSerializer(activation).data)
