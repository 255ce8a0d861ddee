"""Reads for risk: profiles, limits, alerts, snapshots, and the exposure the rules are fed with.

``risk_limits_for_check`` and ``risk_exposure`` are the pre-trade check's and the
monitor's loaders: a handful of queries per user whatever the number of
limits, positions and open orders (``benchmarks/risk.py`` measures them).
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from django.core.cache import cache
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.core.compiled import compiled
from apps.core.errors import NotFound, ValidationFailed
from apps.exchanges.models import PaperAccount, PaperBalance
from apps.orders.models import Order, Position
from apps.portfolio.models import EquitySnapshot
from apps.risk import checks
from apps.risk.models import RiskAlert, RiskLimit, RiskProfile, RiskSnapshot, RiskState

#: Quote assets valued 1:1 with the profile currency (the platform trades against these).
STABLE_ASSETS = frozenset({"USD", "USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI"})
ZERO = Decimal("0")


def risk_profile_get(*, user) -> RiskProfile:
    """The user's risk profile; the defaults (unsaved) when the user never set one.

    Reading never writes: a profile row exists once the user saves limits.
    """
    return RiskProfile.objects.filter(owner=user).first() or RiskProfile(owner=user)


# ------------------------------------------------------------------ limits
def risk_limit_list(*, user, kind: str | None = None, bot_id: int | None = None) -> QuerySet[RiskLimit]:
    qs = RiskLimit.objects.filter(owner=user)
    if kind:
        qs = qs.filter(kind=kind)
    if bot_id is not None:
        qs = qs.filter(bot_id=bot_id)
    return qs


def risk_limit_get(*, user, pk) -> RiskLimit:
    limit = RiskLimit.objects.filter(owner=user, pk=pk).first() if str(pk).isdigit() else None
    if limit is None:
        raise NotFound("Limit not found.")
    return limit


def _as_rule(limit: RiskLimit) -> checks.Limit:
    return checks.Limit(
        kind=limit.kind,
        value=limit.value,
        action=limit.action,
        id=limit.pk,
        bot_id=limit.bot_id,
        account_key=limit.account_key,
        symbol=limit.symbol,
        asset=limit.asset,
        cooldown_minutes=limit.cooldown_minutes,
        label=limit.get_kind_display(),
    )


def _profile_rules(profile: RiskProfile) -> list[checks.Limit]:
    """The profile's user-wide limits (enforced once the user saved them), all with the reject action."""
    rules = [
        checks.Limit(
            kind=checks.OPEN_ORDERS, value=Decimal(profile.max_open_orders), label="max open orders"
        ),
        checks.Limit(kind=checks.LEVERAGE, value=profile.max_leverage, label="max leverage"),
    ]
    if profile.max_position_notional is not None:
        rules.append(
            checks.Limit(
                kind=checks.POSITION_NOTIONAL, value=profile.max_position_notional, label="max position value"
            )
        )
    if profile.max_daily_loss is not None:
        rules.append(
            checks.Limit(kind=checks.DAILY_LOSS, value=profile.max_daily_loss, label="max daily loss")
        )
    return rules


RULES_CACHE_SECONDS = 300


def rules_cache_key(owner_id: int) -> str:
    return f"risk:rules:{owner_id}"


def risk_limits_for_check(*, owner_id: int) -> tuple[RiskProfile | None, list[checks.Limit]]:
    """The user's saved profile (or ``None``) and every enabled limit as the rules take them.

    Cached (``apps.risk.tracking`` drops the entry whenever a limit or the profile
    changes): every order reads them, users rarely change them.
    """
    key = rules_cache_key(owner_id)
    cached = cache.get(key)
    if cached is not None:
        return cached
    profile = RiskProfile.objects.filter(owner_id=owner_id).first()
    rules = _profile_rules(profile) if profile is not None else []
    rules += [_as_rule(limit) for limit in RiskLimit.objects.filter(owner_id=owner_id, enabled=True)]
    cache.set(key, (profile, rules), RULES_CACHE_SECONDS)
    return profile, rules


# ---------------------------------------------------------------- exposure
def account_key(*, paper_account_id: int | None = None, connection_id: int | None = None) -> str:
    return f"paper:{paper_account_id}" if paper_account_id else f"live:{connection_id}"


def local_today(user_timezone: str, now: datetime) -> date:
    try:
        zone = zoneinfo.ZoneInfo(user_timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return now.astimezone(zone).date()


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@functools.cache
def _rows_sql() -> str:
    """The exposure query, built once per process from the models' tables (no ORM compile per order)."""
    open_statuses = ", ".join(f"'{status}'" for status in Order.OPEN_STATUSES)
    # A bot replay's throw-away paper account (a simulation on past candles) is no exposure.
    not_replay = f"(paper_account_id IS NULL OR paper_account_id NOT IN (SELECT id FROM {_table(PaperAccount)} WHERE replay_id IS NOT NULL))"  # noqa: S608
    # Table names come from the models and the statuses are fixed; the owner id is a parameter.
    return f"""
        SELECT 'p', paper_account_id, connection_id, symbol, side, size, mark_price, average_entry, leverage,
               unrealized_pnl, CAST(NULL AS BIGINT), FALSE, liquidation_price
          FROM {_table(Position)} WHERE owner_id = %s AND size > 0 AND {not_replay}
        UNION ALL
        SELECT 'o', paper_account_id, connection_id, symbol, side, amount, filled, price, stop_price,
               CAST(NULL AS NUMERIC), bot_id, reduce_only, CAST(NULL AS NUMERIC)
          FROM {_table(Order)} WHERE owner_id = %s AND status IN ({open_statuses}) AND {not_replay}
        UNION ALL
        SELECT 'b', b.account_id, CAST(NULL AS BIGINT), b.asset, '', b.free, b.used, CAST(NULL AS NUMERIC),
               CAST(NULL AS NUMERIC), CAST(NULL AS NUMERIC), CAST(NULL AS BIGINT), FALSE, CAST(NULL AS NUMERIC)
          FROM {_table(PaperBalance)} b JOIN {_table(PaperAccount)} a ON a.id = b.account_id WHERE a.user_id = %s AND a.replay_id IS NULL
        UNION ALL
        SELECT 'k', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), currency, '', CAST(NULL AS NUMERIC),
               CAST(NULL AS NUMERIC), CAST(NULL AS NUMERIC), CAST(NULL AS NUMERIC), CAST(NULL AS NUMERIC),
               CAST(NULL AS BIGINT), kill_switch, CAST(NULL AS NUMERIC)
          FROM {_table(RiskProfile)} WHERE owner_id = %s AND kill_switch
        UNION ALL
        SELECT 's', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(day AS TEXT), CAST(last_loss_at AS TEXT),
               day_realized, day_start_unrealized, peak_equity, CAST(consecutive_losses AS NUMERIC),
               CAST(NULL AS NUMERIC), CAST(NULL AS BIGINT), FALSE, CAST(NULL AS NUMERIC)
          FROM {_table(RiskState)} WHERE owner_id = %s
    """  # noqa: S608


def _number(value) -> Decimal | None:
    # PostgreSQL hands numerics back as Decimal; SQLite (the embedded default) as int/float/str.
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _rows(owner_id: int) -> list[tuple]:
    """Open positions, open orders, paper balances, an engaged kill switch and the risk state in one round trip.

    The pre-trade check runs for every order: one raw UNION ALL (compiled once) instead of
    four ORM queries is most of its budget. Columns: tag, paper id, connection id, symbol
    (asset, currency), side, five numbers (position: size, mark, entry, leverage, unrealized;
    order: amount, filled, price, stop, -; balance: free, used; state: today's realized, the
    day's starting unrealized, peak equity, losing streak), bot id, flag (reduce-only, kill
    switch), liquidation price. The state's day and last loss travel as text in symbol/side.
    """
    with connection.cursor() as cursor:
        cursor.execute(_rows_sql(), [owner_id] * 5)
        rows = cursor.fetchall()
    if connection.vendor == "postgresql":
        return rows  # already Decimal and bool
    return [
        (
            tag,
            paper,
            conn,
            symbol,
            side,
            *(_number(v) for v in numbers),
            bot,
            bool(flag),
            _number(liquidation),
        )
        for tag, paper, conn, symbol, side, *numbers, bot, flag, liquidation in rows
    ]


@dataclass(frozen=True)
class _StateRow:
    """``RiskState``'s figures as read by the exposure query (the monitor passes the locked row instead)."""

    day: date | None
    day_realized: Decimal
    day_start_unrealized: Decimal
    peak_equity: Decimal | None
    consecutive_losses: int
    last_loss_at: datetime | None

    @classmethod
    def from_row(cls, day: str | None, last_loss: str | None, numbers) -> _StateRow:
        realized, start_unrealized, peak, losses, _ = numbers
        when = parse_datetime(last_loss) if last_loss else None
        if when is not None and timezone.is_naive(when):  # SQLite keeps UTC without an offset
            when = when.replace(tzinfo=UTC)
        return cls(parse_date(day[:10]) if day else None, realized, start_unrealized, peak, int(losses), when)


def risk_exposure(*, owner_id: int, user_timezone: str = "UTC", now: datetime | None = None,
                  profile: RiskProfile | None = None, state: RiskState | None = None) -> checks.Exposure:  # fmt: skip
    """The user's positions, open orders, equity, today's P&L, peak, losing streak and kill switch (one query).

    ``state``: the caller's (locked) ``RiskState``, read here otherwise.
    """
    now = now or timezone.now()
    currency = profile.currency if profile is not None else "USDT"
    positions: list[checks.PositionState] = []
    marks: dict[str, Decimal] = {}
    unrealized = ZERO
    order_rows, balances = [], []
    kill_switch = False
    read_state = None
    for row in _rows(owner_id):
        tag, paper_id, connection_id, symbol, side, n1, n2, n3, n4, n5, _bot, reduce_only, liquidation = row
        if tag == "s":
            read_state = _StateRow.from_row(symbol, side, (n1, n2, n3, n4, n5))
        elif tag == "k":
            kill_switch = bool(reduce_only)
        elif tag == "b":
            balances.append((symbol, n1, n2))
        elif tag == "o":
            order_rows.append(row)
        else:
            price = n2 or n3 or ZERO
            signed = n1 if side == Position.Side.LONG else -n1
            key = account_key(paper_account_id=paper_id, connection_id=connection_id)
            positions.append(checks.PositionState(key, symbol, signed, price, n4, liquidation))
            marks.setdefault(checks.base_asset(symbol), price)
            unrealized += n5 or ZERO
    open_orders = [
        checks.OpenOrderState(
            account_key(paper_account_id=paper_id, connection_id=connection_id),
            symbol,
            (amount - filled) if side == "buy" else -(amount - filled),
            price or stop_price or marks.get(checks.base_asset(symbol), ZERO),
            bot_id,
            bool(reduce_only),
        )
        for _, paper_id, connection_id, symbol, side, amount, filled, price, stop_price, _, bot_id, reduce_only, _ in (
            order_rows
        )
    ]
    equity = _equity(owner_id=owner_id, currency=currency, marks=marks, balances=balances)
    if state is None:
        state = read_state
    daily_pnl = ZERO
    peak = equity
    losses, last_loss = 0, None
    if state is not None:
        if state.day == local_today(user_timezone, now):
            daily_pnl = state.day_realized + unrealized - state.day_start_unrealized
        if state.peak_equity is not None:
            peak = state.peak_equity if equity is None else max(state.peak_equity, equity)
        losses, last_loss = state.consecutive_losses, state.last_loss_at
    return checks.Exposure(
        equity=equity,
        positions=positions,
        open_orders=open_orders,
        daily_pnl=daily_pnl,
        peak_equity=peak,
        consecutive_losses=losses,
        last_loss_at=last_loss,
        now=now,
        kill_switch=kill_switch,
        currency=currency,
        unrealized=unrealized,
    )


def _equity(
    *, owner_id: int, currency: str, marks: dict[str, Decimal], balances: list[tuple[str, Decimal, Decimal]]
) -> Decimal | None:
    """Paper balances valued at the positions' marks (stablecoins at 1); without paper balances the
    newest portfolio snapshot in the profile currency; ``None`` when neither exists."""
    if balances:
        total = ZERO
        for asset, free, used in balances:
            amount = free + used
            if asset == currency or asset in STABLE_ASSETS:
                total += amount
            elif asset in marks:
                total += amount * marks[asset]
        return total
    if PaperAccount.objects.trading().filter(user_id=owner_id).exists():
        return ZERO
    snapshot = (
        EquitySnapshot.objects.filter(owner_id=owner_id, currency=currency).order_by("-timestamp").first()
    )
    return None if snapshot is None else snapshot.equity


# ------------------------------------------------------------------ alerts
ALERT_FILTERS = ("severity", "kind", "state")


def risk_alert_list(*, user, severity: str | None = None, kind: str | None = None, state: str | None = None):
    """The user's alerts, newest first; ``state`` is active, resolved, acknowledged or unacknowledged."""
    qs = RiskAlert.objects.filter(owner=user)
    if severity:
        qs = qs.filter(severity=severity)
    if kind:
        qs = qs.filter(kind=kind)
    if state == "active":
        qs = qs.filter(resolved_at__isnull=True)
    elif state == "resolved":
        qs = qs.filter(resolved_at__isnull=False)
    elif state == "acknowledged":
        qs = qs.filter(acknowledged_at__isnull=False)
    elif state == "unacknowledged":
        qs = qs.filter(acknowledged_at__isnull=True)
    elif state:
        raise ValidationFailed(
            "Unknown alert state.", fields={"state": ["active, resolved, acknowledged or unacknowledged"]}
        )
    return qs


def risk_alert_get(*, user, pk) -> RiskAlert:
    alert = RiskAlert.objects.filter(owner=user, pk=pk).first() if str(pk).isdigit() else None
    if alert is None:
        raise NotFound("Alert not found.")
    return alert


# --------------------------------------------------------------- snapshots
def risk_snapshot_latest(*, user) -> RiskSnapshot | None:
    return RiskSnapshot.objects.filter(owner=user).order_by("-timestamp", "-id").first()


def risk_snapshot_history(*, user, limit: int = 96) -> list[RiskSnapshot]:
    return list(RiskSnapshot.objects.filter(owner=user).order_by("-timestamp")[:limit])


def kill_switch_is_on(*, user_id: int) -> bool:
    """Whether the user's kill switch is engaged (``order_place`` refuses new orders then).

    Asked for every order: compiled once per process (apps/core/compiled.py).
    """
    return bool(_engaged(user_id))


@compiled
def _engaged(user_id: int):
    return RiskProfile.objects.filter(owner_id=user_id, kill_switch=True).values_list("pk", flat=True)[:1]
