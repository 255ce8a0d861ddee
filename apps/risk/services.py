"""Writes for risk profiles, limits and the running risk state, with the rules every limit must satisfy."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from apps.core.errors import ValidationFailed
from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES
from apps.exchanges.models import ExchangeConnection, PaperAccount
from apps.orders.models import Position
from apps.risk.models import MAX_LEVERAGE_CAP, LimitAction, LimitKind, RiskLimit, RiskProfile, RiskState
from apps.risk.selectors import local_today

CURRENCY_RE = re.compile(r"^[A-Z0-9]{2,20}$")
MAX_OPEN_ORDERS_CAP = 10_000
_AMOUNT_LIMIT = Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)


def _check_amount(value: Decimal | None, field: str, errors: dict[str, list[str]]) -> None:
    if value is None:
        return
    if not value.is_finite() or value <= 0:
        errors[field] = ["Must be greater than 0, or empty for no limit."]
    elif value >= _AMOUNT_LIMIT:
        errors[field] = ["Too large."]
    elif value.as_tuple().exponent < -AMOUNT_PLACES:  # type: ignore[operator]
        errors[field] = [f"At most {AMOUNT_PLACES} decimal places."]


def validate_limits(
    *,
    currency: str,
    max_position_notional: Decimal | None,
    max_daily_loss: Decimal | None,
    max_leverage: Decimal,
    max_open_orders: int,
) -> dict[str, Any]:
    """Check a complete set of limits; returns them cleaned or raises ``ValidationFailed`` listing every problem."""
    errors: dict[str, list[str]] = {}
    currency = (currency or "").strip().upper()
    if not CURRENCY_RE.match(currency):
        errors["currency"] = ["Expected an asset code such as USDT or USD."]
    _check_amount(max_position_notional, "max_position_notional", errors)
    _check_amount(max_daily_loss, "max_daily_loss", errors)
    if not max_leverage.is_finite() or not Decimal(1) <= max_leverage <= MAX_LEVERAGE_CAP:
        errors["max_leverage"] = [f"Must be between 1 (no leverage) and {MAX_LEVERAGE_CAP}."]
    elif max_leverage.as_tuple().exponent < -2:  # type: ignore[operator]
        errors["max_leverage"] = ["At most 2 decimal places."]
    if not 1 <= max_open_orders <= MAX_OPEN_ORDERS_CAP:
        errors["max_open_orders"] = [
            f"Must be between 1 and {MAX_OPEN_ORDERS_CAP}; use the kill switch to stop all orders."
        ]
    if errors:
        raise ValidationFailed("Invalid risk limits.", fields=errors)
    return {
        "currency": currency,
        "max_position_notional": max_position_notional,
        "max_daily_loss": max_daily_loss,
        "max_leverage": max_leverage,
        "max_open_orders": max_open_orders,
    }


@transaction.atomic
def risk_profile_update(
    *,
    user,
    currency: str,
    max_position_notional: Decimal | None,
    max_daily_loss: Decimal | None,
    max_leverage: Decimal,
    max_open_orders: int,
) -> RiskProfile:
    """Replace the user's risk limits (creating the profile on first save).

    The kill switch is kept as stored: only ``apps.risk.killswitch`` turns it on
    (stopping bots, cancelling orders, with its audit) or off.
    """
    limits = validate_limits(
        currency=currency,
        max_position_notional=max_position_notional,
        max_daily_loss=max_daily_loss,
        max_leverage=max_leverage,
        max_open_orders=max_open_orders,
    )
    profile, _ = RiskProfile.objects.select_for_update().update_or_create(owner=user, defaults=limits)
    return profile


# ------------------------------------------------------------------ limits
#: Kinds whose value is a fraction of equity (or of the peak): above 1 is allowed for
#: exposure (leveraged accounts) but not for drawdown.
FRACTION_KINDS = {LimitKind.ASSET_EXPOSURE, LimitKind.TOTAL_EXPOSURE, LimitKind.DRAWDOWN}
COUNT_KINDS = {LimitKind.OPEN_ORDERS, LimitKind.LOSING_STREAK}
MAX_COOLDOWN_MINUTES = 7 * 24 * 60
SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")
LIMIT_FIELDS = ("kind", "value", "action", "bot", "paper_account", "connection", "symbol", "asset",
                "cooldown_minutes", "enabled")  # fmt: skip


def _validate_limit(*, user, data: dict[str, Any]) -> dict[str, Any]:
    """Every problem of a complete limit at once (``ValidationFailed``), or the cleaned values."""
    errors: dict[str, list[str]] = {}
    kind, value = data.get("kind"), data.get("value")
    if kind not in LimitKind.values:
        errors["kind"] = ["One of " + ", ".join(LimitKind.values) + "."]
    if data.get("action") not in LimitAction.values:
        errors["action"] = ["One of " + ", ".join(LimitAction.values) + "."]
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        errors["value"] = ["Must be greater than 0."]
    elif value >= _AMOUNT_LIMIT:
        errors["value"] = ["Too large."]
    elif value.as_tuple().exponent < -AMOUNT_PLACES:  # type: ignore[operator]
        errors["value"] = [f"At most {AMOUNT_PLACES} decimal places."]
    elif kind == LimitKind.DRAWDOWN and value >= 1:
        errors["value"] = ["A drawdown is a fraction of the peak below 1 (0.2 = 20%)."]
    elif kind in FRACTION_KINDS and value > 100:
        errors["value"] = ["A fraction of equity (0.5 = 50%), at most 100."]
    elif kind in COUNT_KINDS and (value != value.to_integral_value() or value > MAX_OPEN_ORDERS_CAP):
        errors["value"] = [f"A whole number from 1 to {MAX_OPEN_ORDERS_CAP}."]
    elif kind == LimitKind.LEVERAGE and (value < 1 or value > MAX_LEVERAGE_CAP):
        errors["value"] = [f"Must be between 1 (no leverage) and {MAX_LEVERAGE_CAP}."]
    bot, paper, connection = (
        _scope_object(user, name, data.get(name)) for name in ("bot", "paper_account", "connection")
    )
    if bot is not None and bot.owner_id != user.pk:
        errors["bot"] = ["Not found."]
    if paper is not None and (not isinstance(paper, PaperAccount) or paper.user_id != user.pk):
        errors["paper_account"] = ["Not found."]
    if connection is not None and (
        not isinstance(connection, ExchangeConnection)
        or connection.user_id != user.pk
        or connection.deleted_at
    ):
        errors["connection"] = ["Not found."]
    if paper is not None and connection is not None:
        errors["connection"] = ["Narrow to one account: a paper account or a connection, not both."]
    symbol = (data.get("symbol") or "").strip().upper()
    if symbol and not SYMBOL_RE.match(symbol):
        errors["symbol"] = ["Expected a market such as BTC/USDT (or BTC/USDT:USDT)."]
    asset = (data.get("asset") or "").strip().upper()
    if asset and not CURRENCY_RE.match(asset):
        errors["asset"] = ["Expected an asset code such as BTC."]
    if asset and kind != LimitKind.ASSET_EXPOSURE:
        errors["asset"] = ["Only an asset exposure limit names an asset."]
    cooldown = data.get("cooldown_minutes", 60)
    if not isinstance(cooldown, int) or not 1 <= cooldown <= MAX_COOLDOWN_MINUTES:
        errors["cooldown_minutes"] = [f"Between 1 and {MAX_COOLDOWN_MINUTES} minutes."]
    if errors:
        raise ValidationFailed("Invalid risk limit.", fields=errors)
    return {
        **data, "bot": bot, "paper_account": paper, "connection": connection, "symbol": symbol, "asset": asset,
        "cooldown_minutes": cooldown,
    }  # fmt: skip


def _scope_object(user, name: str, value: Any) -> Any:
    """A scope given by id becomes the object; another user's (or a missing) id stays a bad id (-1)."""
    if value is None or not isinstance(value, int):
        return value
    # The bots app sits above risk: its model is reached through the foreign key, not an import.
    model = RiskLimit._meta.get_field(name).related_model
    owner_field = "owner_id" if name == "bot" else "user_id"
    found = model.objects.filter(pk=value, **{owner_field: user.pk}).first()
    return found if found is not None else _Missing()


class _Missing:
    """An id that names nothing of the user's: reported as "Not found." on its field."""

    owner_id = user_id = None
    deleted_at = None


@transaction.atomic
def risk_limit_create(*, user, **data: Any) -> RiskLimit:
    """Add a limit (``LIMIT_FIELDS``); raises ``ValidationFailed`` listing every bad field."""
    data = {"action": LimitAction.REJECT, "enabled": True, "cooldown_minutes": 60, **data}
    clean = _validate_limit(user=user, data=data)
    return RiskLimit.objects.create(owner=user, **{k: clean.get(k) for k in LIMIT_FIELDS if k in clean})


@transaction.atomic
def risk_limit_update(*, limit: RiskLimit, **changes: Any) -> RiskLimit:
    """Change some fields of a limit; the result is validated as a whole."""
    locked = RiskLimit.objects.select_for_update().get(pk=limit.pk)
    current = {name: getattr(locked, name) for name in LIMIT_FIELDS}
    clean = _validate_limit(user=locked.owner, data={**current, **changes})
    for name in LIMIT_FIELDS:
        setattr(locked, name, clean[name])
    locked.save()
    return locked


@transaction.atomic
def risk_limit_delete(*, limit: RiskLimit) -> None:
    RiskLimit.objects.filter(pk=limit.pk).delete()


# ------------------------------------------------------------------- state
# Inside a caller's transaction (a fill's position save, the only caller) no savepoint: nothing
# here is caught and carried on from, so a failure rolls back the caller's transaction with it.
@transaction.atomic(savepoint=False)
def risk_state_record_realized(
    *, owner_id: int, change: Decimal, closed_trade: bool, owner_timezone: str | None = None
) -> None:
    """Add a realized P&L change to today's (the user's local day) and, for a closed trade, the streak.

    ``owner_timezone``: the owner's, where the caller holds the user (today's row is then moved by
    one ``UPDATE``, without reading it first, when it exists).
    """
    now = timezone.now()
    if owner_timezone is not None and connection.vendor == "postgresql":  # (SQLite adds in floats)
        streak: dict[str, Any] = {}
        if closed_trade:
            streak = (
                {"consecutive_losses": F("consecutive_losses") + 1, "last_loss_at": now}
                if change < 0
                else {"consecutive_losses": 0}
            )
        today = RiskState.objects.filter(owner_id=owner_id, day=local_today(owner_timezone, now))
        if today.update(day_realized=F("day_realized") + change, updated_at=now, **streak):
            return
    # The owner's time zone comes with the locked row (the join is not locked: ``of=self``).
    state, created = (
        RiskState.objects.select_for_update(of=("self",))
        .annotate(owner_timezone=F("owner__timezone"))
        .get_or_create(owner_id=owner_id)
    )
    if created:
        state.owner_timezone = (
            get_user_model().objects.filter(pk=owner_id).values_list("timezone", flat=True).first()
        )
    today = local_today(state.owner_timezone or "UTC", now)
    fields = ["day_realized", "updated_at"]
    if state.day != today:
        state.day, state.day_realized = today, Decimal("0")
        state.day_start_unrealized = unrealized_total(owner_id=owner_id)
        fields += ["day", "day_start_unrealized"]
    state.day_realized += change
    if closed_trade:
        if change < 0:
            state.consecutive_losses += 1
            state.last_loss_at = now
            fields += ["consecutive_losses", "last_loss_at"]
        elif state.consecutive_losses:
            state.consecutive_losses = 0
            fields.append("consecutive_losses")
    state.save(update_fields=None if created else fields)


def unrealized_total(*, owner_id: int) -> Decimal:
    """The unrealized P&L of the user's open positions."""
    return Position.objects.filter(owner_id=owner_id, size__gt=0).aggregate(u=Sum("unrealized_pnl"))[
        "u"
    ] or Decimal("0")


def risk_state_roll(*, state: RiskState, today, equity: Decimal | None, unrealized: Decimal) -> bool:
    """The monitor's bookkeeping on a locked state: start a new local day, raise the peak equity.

    Returns whether a new day started (today's P&L is then zero). Writes only when something changed.
    """
    fields = []
    rolled = state.day != today
    if rolled:
        state.day, state.day_realized, state.day_start_unrealized = today, Decimal("0"), unrealized
        fields += ["day", "day_realized", "day_start_unrealized"]
    if equity is not None and (state.peak_equity is None or equity > state.peak_equity):
        state.peak_equity = equity
        fields.append("peak_equity")
    if fields:
        state.save(update_fields=[*fields, "updated_at"])
    return rolled
