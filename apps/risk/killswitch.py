"""The kill switch: an emergency stop that keeps going when an exchange fails.

``kill_switch_engage`` first turns the switch on and commits, so from that
moment ``order_place`` refuses every new order that is not reduce-only (a bot's
tick gets the refusal in its event log). Then, each step on its own so one
failure stops nothing else:

1. every bot of the user is stopped (the bots app answers ``kill_switch_engaged``);
2. every open order is cancelled, one by one; an account whose exchange is down
   (unreachable, rate limit, refused key) is not asked again in this pass, its
   orders are reported as failed;
3. optionally every open position is closed with a reduce-only market order whose
   client order id is derived from the activation, the position and its size,
   so a retry or a second press never sends a second close for the same position.

Everything done and everything that failed is written to the
``KillSwitchActivation`` (the audit), pushed live (``kill_switch.updated``) and
sent to the user's notification channels. Failures are retried by
``apps.risk.tasks.kill_switch_retry`` with a doubling delay, up to
``KILL_SWITCH_MAX_RETRIES`` passes; pressing again runs a pass at once. Each pass
repeats all three steps: they are idempotent, and anything that appeared since
(an order from a tick already past the check) is caught too.
``kill_switch_release`` turns it off; stopped bots stay stopped.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.core.errors import Conflict, DomainError, NotFound
from apps.core.events import publish_event
from apps.exchanges.gateway import AuthenticationFailed, ExchangeUnavailable, RateLimited
from apps.exchanges.services import gateway_for_connection
from apps.orders.enums import OrderSide, OrderStatus, OrderType
from apps.orders.models import Order, Position
from apps.orders.services import account_gateway, order_cancel, order_place
from apps.risk.models import KillSwitchActivation, NotificationEvent, RiskProfile
from apps.risk.notifications import notify
from apps.risk.signals import kill_switch_engaged

logger = logging.getLogger(__name__)

RETRY_TASK = "apps.risk.tasks.kill_switch_retry"
RETRY_MAX_SECONDS = 10 * 60
# Errors that say "this account cannot be reached now", not "this order is wrong".
ACCOUNT_WIDE = (ExchangeUnavailable, RateLimited, AuthenticationFailed)
# A bot replay's paper account (``PaperAccount.replay_id``) is a simulation on past candles, not
# the user's trading: the kill switch leaves its orders and position alone.
NOT_A_REPLAY = Q(paper_account__isnull=True) | Q(paper_account__replay_id__isnull=True)
Retry = KillSwitchActivation.Retry


class _Gateways:
    """One gateway per account for a pass; a live exchange's without ccxt's own retries and with a
    short timeout, so a dead exchange costs seconds, not minutes (the pass retries it later)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], Any] = {}

    def get(self, obj: Order | Position, key: tuple[str, int]):
        if key not in self._cache:
            if obj.paper_account_id:
                self._cache[key] = account_gateway(obj.paper_account)
            else:
                self._cache[key] = gateway_for_connection(
                    obj.connection, timeout_seconds=settings.KILL_SWITCH_EXCHANGE_TIMEOUT_SECONDS, retries=0
                )
        return self._cache[key]


@dataclass
class _Pass:
    bots: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    closed: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, action: str, target: str, account: str, error: str) -> None:
        self.failures.append({"action": action, "target": target, "account": account, "error": error[:500]})


def _account_of(obj: Order | Position) -> tuple[tuple[str, int], str]:
    """A key for "this account" and its label for people."""
    if obj.paper_account_id:
        return ("paper", obj.paper_account_id), f"paper account #{obj.paper_account_id}"
    return ("connection", obj.connection_id), f"{obj.connection.exchange} connection #{obj.connection_id}"


# ---------------------------------------------------------------------- steps
def _stop_bots(activation: KillSwitchActivation, result: _Pass) -> None:
    for receiver, answer in kill_switch_engaged.send_robust(
        sender=KillSwitchActivation, user=activation.owner, activation=activation
    ):
        if isinstance(answer, Exception):
            logger.warning(
                "kill switch %s: %s failed: %r",
                activation.pk,
                getattr(receiver, "__name__", receiver),
                answer,
            )
            result.fail("stop_bots", "bots", "", str(getattr(answer, "message", None) or answer))
        elif answer:
            result.bots.extend(answer)


def _cancel_orders(
    activation: KillSwitchActivation, result: _Pass, down: dict[tuple[str, int], str], gateways: _Gateways
) -> None:
    attempted: list[int] = []
    orders = (
        Order.objects.filter(owner=activation.owner)
        .filter(NOT_A_REPLAY)
        .open()
        .select_related("paper_account", "connection")
        .order_by("pk")
    )
    for order in orders:
        key, label = _account_of(order)
        target = f"order #{order.pk} {order.side} {order.amount} {order.symbol}"
        if key in down:
            result.fail("cancel_order", target, label, f"Not tried: {down[key]}")
            continue
        attempted.append(order.pk)
        try:
            order_cancel(order=order, gateway=gateways.get(order, key))
        except (Conflict, Order.DoesNotExist):
            continue  # finished meanwhile (filled, or a bracket leg its entry took along)
        except DomainError as exc:
            result.fail("cancel_order", target, label, exc.message)
            if isinstance(exc, ACCOUNT_WIDE):
                down[key] = exc.message
            attempted.pop()
    # Legs cancelled with their entry count as cancelled by this pass too.
    result.cancelled = list(
        Order.objects.filter(pk__in=attempted, status=OrderStatus.CANCELLED).values_list("pk", flat=True)
    )


def _close_client_id(activation: KillSwitchActivation, position: Position) -> str:
    # The same position at the same size always gets the same id: order_place returns the
    # first order instead of sending a second close. 32 letters/digits fit every exchange.
    digest = hashlib.sha1(f"{position.size.normalize()}".encode()).hexdigest()[:8]  # noqa: S324 - not security
    return f"ks{activation.pk}p{position.pk}x{digest}"[:32]


def _close_positions(
    activation: KillSwitchActivation, result: _Pass, down: dict[tuple[str, int], str], gateways: _Gateways
) -> None:
    positions = (
        Position.objects.filter(owner=activation.owner, size__gt=0)
        .filter(NOT_A_REPLAY)
        .exclude(side=Position.Side.FLAT)
        .select_related("paper_account", "connection")
        .order_by("pk")
    )
    for position in positions:
        key, label = _account_of(position)
        target = f"position #{position.pk} {position.side} {position.size} {position.symbol}"
        if key in down:
            result.fail("close_position", target, label, f"Not tried: {down[key]}")
            continue
        try:
            order = order_place(
                owner=activation.owner,
                account=position.paper_account or position.connection,
                symbol=position.symbol,
                side=OrderSide.SELL if position.side == Position.Side.LONG else OrderSide.BUY,
                type=OrderType.MARKET,
                amount=position.size,
                reduce_only=True,
                client_order_id=_close_client_id(activation, position),
                gateway=gateways.get(position, key),
            )
        except (DomainError, NotFound) as exc:
            result.fail("close_position", target, label, exc.message)
            if isinstance(exc, ACCOUNT_WIDE):
                down[key] = exc.message
            continue
        order.refresh_from_db()
        if order.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            result.fail(
                "close_position", target, label, f"Close order #{order.pk} {order.status}: {order.reason}"
            )
        elif order.status == OrderStatus.PENDING:
            result.fail(
                "close_position", target, label,
                f"Close order #{order.pk} is not confirmed by the exchange yet (the order sync resends it).",
            )  # fmt: skip
        else:
            result.closed.append(
                {
                    "position": position.pk,
                    "symbol": position.symbol,
                    "order": order.pk,
                    "status": order.status,
                }
            )


# ---------------------------------------------------------------------- a pass
def _retry_delay(attempts: int) -> float:
    return min(settings.KILL_SWITCH_RETRY_BASE_SECONDS * 2 ** (attempts - 1), RETRY_MAX_SECONDS)


def _run_pass(activation: KillSwitchActivation) -> float | None:
    """One pass of the three steps, recorded; returns the delay before the next pass, or ``None``."""
    result = _Pass()
    down: dict[tuple[str, int], str] = {}
    gateways = _Gateways()
    _stop_bots(activation, result)
    _cancel_orders(activation, result, down, gateways)
    if activation.close_positions:
        _close_positions(activation, result, down, gateways)
    now = timezone.now()
    with transaction.atomic():
        locked = KillSwitchActivation.objects.select_for_update().get(pk=activation.pk)
        locked.bots_stopped = sorted({*locked.bots_stopped, *result.bots})
        locked.orders_cancelled = sorted({*locked.orders_cancelled, *result.cancelled})
        known = {entry["order"] for entry in locked.positions_closed}
        locked.positions_closed = locked.positions_closed + [
            c for c in result.closed if c["order"] not in known
        ]
        locked.failures = result.failures
        locked.attempts += 1
        locked.last_attempt_at = now
        delay = None
        if not result.failures:
            locked.retry, locked.next_retry_at = Retry.NONE, None
        elif locked.released_at is None and locked.attempts <= settings.KILL_SWITCH_MAX_RETRIES:
            delay = _retry_delay(locked.attempts)
            locked.retry, locked.next_retry_at = Retry.SCHEDULED, now + timedelta(seconds=delay)
        else:
            locked.retry, locked.next_retry_at = Retry.GAVE_UP, None
        locked.save()
        publish_event(locked.owner_id, "kill_switch.updated", activation_payload(locked), on_commit=True)
    for name in ("bots_stopped", "orders_cancelled", "positions_closed", "failures", "attempts",
                 "last_attempt_at", "retry", "next_retry_at"):  # fmt: skip
        setattr(activation, name, getattr(locked, name))
    if locked.retry == Retry.GAVE_UP and result.failures:
        notify(
            locked.owner_id,
            NotificationEvent.KILL_SWITCH,
            {"action": "gave_up", "activation_id": locked.pk, "failures": result.failures,
             "message": f"The kill switch gave up after {locked.attempts} passes; {len(result.failures)} action(s) still failed."},
        )  # fmt: skip
    return delay


def _schedule(activation_id: int, delay: float) -> None:
    from celery import current_app

    try:
        current_app.send_task(RETRY_TASK, args=[activation_id], countdown=delay)
    except Exception:  # the switch is on and the failures are reported; a press runs the next pass
        logger.exception("kill switch %s: retry not queued", activation_id)


def activation_payload(activation: KillSwitchActivation) -> dict[str, Any]:
    return {
        "id": activation.pk,
        "engaged": activation.released_at is None,
        "close_positions": activation.close_positions,
        "bots_stopped": activation.bots_stopped,
        "orders_cancelled": activation.orders_cancelled,
        "positions_closed": activation.positions_closed,
        "failures": activation.failures,
        "attempts": activation.attempts,
        "retry": activation.retry,
    }


# --------------------------------------------------------------------- public
def kill_switch_engage(
    *, user, actor=None, close_positions: bool = False, source: str = "api"
) -> tuple[KillSwitchActivation, bool]:
    """Engage the user's kill switch (see the module docstring); returns ``(activation, created)``.

    Idempotent: while a press is in force a second one returns it (``created=False``)
    after running another pass at once; asking to close positions then upgrades it.
    """
    with transaction.atomic():
        profile, _ = RiskProfile.objects.select_for_update().get_or_create(owner=user)
        activation = (
            KillSwitchActivation.objects.select_for_update().filter(owner=user, released_at=None).first()
        )
        created = activation is None
        if created:
            activation = KillSwitchActivation.objects.create(
                owner=user, engaged_by=actor, source=source, close_positions=close_positions
            )
        elif close_positions and not activation.close_positions:
            activation.close_positions = True
            activation.save(update_fields=["close_positions"])
        if not profile.kill_switch:
            profile.kill_switch = True
            profile.save(update_fields=["kill_switch", "updated_at"])
        already_scheduled = not created and activation.retry == Retry.SCHEDULED
    # Committed: from here on no new order is accepted, whatever the steps below meet.
    delay = _run_pass(activation)
    if delay is not None and not already_scheduled:
        _schedule(activation.pk, delay)
    if created:
        notify(
            user.pk,
            NotificationEvent.KILL_SWITCH,
            {
                "action": "engaged",
                "activation_id": activation.pk,
                "message": (
                    f"Kill switch engaged: {len(activation.bots_stopped)} bot(s) stopped, "
                    f"{len(activation.orders_cancelled)} order(s) cancelled, "
                    f"{len(activation.positions_closed)} position(s) closed, "
                    f"{len(activation.failures)} action(s) failed"
                    + (" (retrying)." if activation.failures else ".")
                ),
                "failures": activation.failures,
            },
        )
    return activation, created


def kill_switch_retry(*, activation_id: int) -> float | None:
    """The retry task's pass: nothing once released or when nothing is left to retry."""
    activation = KillSwitchActivation.objects.select_related("owner").filter(pk=activation_id).first()
    if activation is None or activation.released_at is not None or activation.retry != Retry.SCHEDULED:
        return None
    return _run_pass(activation)


def kill_switch_release(*, user, actor=None) -> KillSwitchActivation:
    """Turn the kill switch off (orders are accepted again; stopped bots stay stopped).

    Not engaged is a ``Conflict`` (409). Pending retries stop.
    """
    with transaction.atomic():
        profile = RiskProfile.objects.select_for_update().filter(owner=user).first()
        activation = (
            KillSwitchActivation.objects.select_for_update().filter(owner=user, released_at=None).first()
        )
        if activation is None and not (profile and profile.kill_switch):
            raise Conflict("The kill switch is not engaged.", code="kill_switch_not_engaged")
        if profile and profile.kill_switch:
            profile.kill_switch = False
            profile.save(update_fields=["kill_switch", "updated_at"])
        if activation is None:  # a flag set without a press (an old row): record the release too
            activation = KillSwitchActivation.objects.create(owner=user, engaged_by=actor, source="flag")
        activation.released_at, activation.released_by = timezone.now(), actor
        if activation.retry == Retry.SCHEDULED:
            activation.retry, activation.next_retry_at = Retry.NONE, None
        activation.save()
        publish_event(user.pk, "kill_switch.updated", activation_payload(activation), on_commit=True)
        notify(
            user.pk,
            NotificationEvent.KILL_SWITCH,
            {"action": "released", "activation_id": activation.pk,
             "message": "Kill switch released: orders are accepted again (stopped bots stay stopped)."},
        )  # fmt: skip
    return activation


# ---------------------------------------------------------------------- reads
def kill_switch_activation_list(*, user) -> QuerySet[KillSwitchActivation]:
    """The user's presses of the kill switch, newest first (the audit)."""
    return KillSwitchActivation.objects.filter(owner=user).select_related("engaged_by", "released_by")


def kill_switch_activation_get(*, user, pk: int | str) -> KillSwitchActivation:
    activation = kill_switch_activation_list(user=user).filter(pk=pk).first() if str(pk).isdigit() else None
    if activation is None:
        raise NotFound("Kill switch activation not found.")
    return activation


def kill_switch_active(*, user) -> KillSwitchActivation | None:
    """The press in force, if any."""
    return kill_switch_activation_list(user=user).filter(released_at=None).first()
