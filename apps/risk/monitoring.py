"""The risk monitor: per user, recompute the figures, store a snapshot, raise or resolve alerts, act.

Run by the beat every minute for every user with something to watch
(``risk_monitor_all`` fans out chunks to workers) and, debounced, after every
fill (``apps.risk.tracking``). ``docs/risk.md`` defines each figure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.errors import DomainError
from apps.marketdata.models import Market
from apps.marketdata.selectors import candles as stored_candles
from apps.risk import alerts, checks, metrics, selectors, services
from apps.risk.models import RiskAlert, RiskLimit, RiskProfile, RiskSnapshot, RiskState

logger = logging.getLogger(__name__)

SNAPSHOT_BUCKET_SECONDS = 15 * 60
#: An order rejection's alert stays active this long after its last rejection.
ORDER_ALERT_QUIET = timedelta(minutes=5)
CHUNK_SIZE = 100
#: An info alert opens when a portfolio limit is used this much (and closes below it).
NEAR_LIMIT = Decimal("0.8")
MARKET_CACHE_SIZE = 5000
_Q4 = Decimal("0.0001")


@dataclass(frozen=True)
class Figures:
    equity: Decimal | None
    exposure: dict[str, Decimal]
    gross: Decimal
    net: Decimal
    leverage: Decimal | None
    margin_level: Decimal | None
    liquidation_distance: Decimal | None
    daily_pnl: Decimal
    drawdown: Decimal
    var: metrics.VarResult | None
    score: int
    components: dict[str, float]


# ------------------------------------------------------------- daily prices
_returns_cache: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray] | None] = {}


def daily_returns(*, exchange: str, symbol: str, today: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(timestamps, simple daily returns) of a market from the candle store; cached per process and day."""
    key = (exchange, symbol, today)
    if key not in _returns_cache:
        if len(_returns_cache) > 5000:
            _returns_cache.clear()
        try:
            data = stored_candles(
                exchange=exchange, symbol=symbol, timeframe="1d", limit=metrics.MAX_VAR_DAYS + 1
            )
        except DomainError:  # unknown market, nothing stored: not cached, found once imported
            return None
        else:
            closes = np.asarray(data.close, dtype=float)
            _returns_cache[key] = (
                (np.asarray(data.timestamp[1:], dtype=np.int64), metrics.simple_returns(closes))
                if len(closes) > 1
                else None
            )
    return _returns_cache[key]


_market_cache: dict[tuple[tuple[str, ...], str], tuple[str, str]] = {}


def caches_clear() -> None:
    """Forget the process's prices and market choices (tests; a worker restart does the same)."""
    _returns_cache.clear()
    _market_cache.clear()


def _market_for(symbols: list[str], exchange: str) -> tuple[str, str] | None:
    """The stored market whose daily closes price an asset: a held symbol, on the preferred exchange first.

    Cached per process (the catalog changes rarely; a new market is found after a restart or
    ``MARKET_CACHE_SIZE`` lookups).
    """
    key = (tuple(symbols), exchange)
    if key not in _market_cache:
        if len(_market_cache) > MARKET_CACHE_SIZE:
            _market_cache.clear()
        rows = list(
            Market.objects.filter(symbol__in=symbols)
            .values_list("exchange__slug", "symbol")
            .order_by("symbol")
        )
        rows.sort(key=lambda row: row[0] != exchange)
        if not rows:
            return None  # not cached: prices imported later are found on the next run
        _market_cache[key] = rows[0]
    return _market_cache[key]


def portfolio_var(exposure: checks.Exposure, *, exchange: str, today: str) -> metrics.VarResult | None:
    net = {a: v for a, v in checks.net_by_asset(exposure).items() if v}
    if not net:
        return None
    series = []
    for asset in sorted(net):
        symbols = sorted({p.symbol for p in exposure.positions if p.base == asset})
        market = _market_for(symbols, exchange)
        found = market and daily_returns(exchange=market[0], symbol=market[1], today=today)
        if not found:
            logger.info("no daily prices for %s: VaR left out", asset)
            return None
        series.append(found)
    common = series[0][0]
    for ts, _ in series[1:]:
        common = np.intersect1d(common, ts)
    matrix = np.column_stack([r[np.isin(ts, common)] for ts, r in series])
    return metrics.portfolio_var(matrix, np.array([float(net[a]) for a in sorted(net)]))


# ----------------------------------------------------------------- figures
def figures(exposure: checks.Exposure, *, exchange: str, today: str) -> Figures:
    equity = exposure.equity
    net = checks.net_by_asset(exposure)
    gross = checks.gross_position_value(exposure)
    has_equity = equity is not None and equity > 0
    leverage = (gross / equity).quantize(_Q4) if has_equity else None
    margined = [p for p in exposure.positions if p.leverage > 1 or ":" in p.symbol]
    margin_used = sum((abs(p.notional) / p.leverage for p in margined), Decimal("0"))
    margin_level = (equity / margin_used).quantize(_Q4) if margin_used and equity is not None else None
    distances = [
        abs(p.mark - p.liquidation_price) / p.mark
        for p in exposure.positions
        if p.liquidation_price and p.mark
    ]
    var = portfolio_var(exposure, exchange=exchange, today=today)
    dd = checks.drawdown(exposure)
    score, components = metrics.risk_score(
        equity=float(equity) if equity is not None else None,
        leverage=float(leverage or 0),
        var_99=var.var_99 if var else None,
        drawdown=float(dd),
        daily_pnl=float(exposure.daily_pnl),
        largest_exposure=float(max((abs(v) for v in net.values()), default=0)),
        gross_exposure=float(sum((abs(v) for v in net.values()), Decimal("0"))),
    )
    return Figures(
        equity=equity,
        exposure=net,
        gross=gross,
        net=sum(net.values(), Decimal("0")),
        leverage=leverage,
        margin_level=margin_level,
        liquidation_distance=min(distances).quantize(Decimal("0.000001")) if distances else None,
        daily_pnl=exposure.daily_pnl,
        drawdown=dd.quantize(Decimal("0.000001")),
        var=var,
        score=score,
        components=components,
    )


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(round(value, 8)))


SNAPSHOT_FIELDS = [
    "timestamp", "currency", "equity", "peak_equity", "gross_exposure", "net_exposure", "exposure", "leverage",
    "margin_level", "liquidation_distance", "daily_pnl", "drawdown", "var_95", "var_99", "cvar_95", "cvar_99",
    "var_days", "score", "components",
]  # fmt: skip


def _snapshot_store(*, owner_id: int, now: datetime, currency: str, peak: Decimal | None, f: Figures) -> None:
    """Upsert the user's row of the current bucket (one statement: the monitor runs for every user every minute)."""
    bucket = datetime.fromtimestamp(
        int(now.timestamp()) // SNAPSHOT_BUCKET_SECONDS * SNAPSHOT_BUCKET_SECONDS, tz=now.tzinfo
    )
    row = RiskSnapshot(
        owner_id=owner_id,
        bucket=bucket,
        timestamp=now,
        currency=currency,
        equity=f.equity,
        peak_equity=peak,
        gross_exposure=f.gross,
        net_exposure=f.net,
        exposure={asset: f"{value.normalize():f}" for asset, value in sorted(f.exposure.items())},
        leverage=f.leverage,
        margin_level=f.margin_level,
        liquidation_distance=f.liquidation_distance,
        daily_pnl=f.daily_pnl,
        drawdown=f.drawdown,
        var_95=_dec(f.var.var_95) if f.var else None,
        var_99=_dec(f.var.var_99) if f.var else None,
        cvar_95=_dec(f.var.cvar_95) if f.var else None,
        cvar_99=_dec(f.var.cvar_99) if f.var else None,
        var_days=f.var.days if f.var else 0,
        score=f.score,
        components=f.components,
    )
    RiskSnapshot.objects.bulk_create(
        [row], update_conflicts=True, unique_fields=["owner", "bucket"], update_fields=SNAPSHOT_FIELDS
    )


# ------------------------------------------------------------------- runs
def risk_monitor_user(*, user_id: int, now: datetime | None = None) -> Figures | None:
    """Recompute one user's risk: snapshot, alerts for the portfolio limits broken now, their actions.

    About six statements per user in the steady state (user, state lock, exposure, snapshot
    upsert, alert resolution, commit); the rules come from the cache, prices from the process's.
    """
    now = now or timezone.now()
    user = get_user_model().objects.filter(pk=user_id).values("timezone", "default_exchange").first()
    if user is None:
        return None
    today = selectors.local_today(user["timezone"], now)
    profile, limits = selectors.risk_limits_for_check(owner_id=user_id)
    with transaction.atomic():
        state, _ = RiskState.objects.select_for_update().get_or_create(owner_id=user_id)
        exposure = selectors.risk_exposure(
            owner_id=user_id, user_timezone=user["timezone"], now=now, profile=profile, state=state
        )
        if services.risk_state_roll(
            state=state, today=today, equity=exposure.equity, unrealized=exposure.unrealized
        ):
            exposure.daily_pnl = Decimal("0")
        exposure.peak_equity = state.peak_equity
        f = figures(exposure, exchange=user["default_exchange"], today=today.isoformat())
        _snapshot_store(owner_id=user_id, now=now, currency=exposure.currency, peak=state.peak_equity, f=f)
        keep = []
        breaches = checks.portfolio_breaches(limits, exposure)
        for breach in breaches:
            key = alerts.breach_key(breach, source="monitor")
            keep.append(key)
            _, created = alerts.alert_raise(owner_id=user_id, key=key, breach=breach)
            if created:  # act once per condition, not every minute it lasts
                alerts.action_take(owner_id=user_id, breach=breach)
        for near in near_limit(limits, exposure, broken=breaches):
            key = alerts.breach_key(near, source="monitor:near")
            keep.append(key)
            alerts.alert_raise(owner_id=user_id, key=key, breach=near, severity=RiskAlert.Severity.INFO)
        alerts.alerts_resolve_ended(owner_id=user_id, keep=keep, order_quiet_since=now - ORDER_ALERT_QUIET)
    return f


def near_limit(limits: list[checks.Limit], exposure: checks.Exposure, *, broken: list[checks.Breach]):
    """Portfolio limits used to ``NEAR_LIMIT`` or more but not broken: the info alerts' breaches."""
    seen = {(b.limit_id, b.limit_name, b.symbol) for b in broken}
    scaled = [replace(limit, value=limit.value * NEAR_LIMIT) for limit in limits]
    for near in checks.portfolio_breaches(scaled, exposure):
        if (near.limit_id, near.limit_name, near.symbol) in seen:
            continue
        threshold = near.threshold / NEAR_LIMIT
        used = (near.measured / threshold * 100).quantize(Decimal("1"))
        name = near.limit_name[:1].upper() + near.limit_name[1:]
        yield replace(
            near,
            threshold=threshold,
            action="reject",  # a warning only: nothing is done until the limit itself is broken
            message=f"{name}: {used}% used ({checks.fmt(near.measured)} of {checks.fmt(threshold)})"
            + (f" for {near.symbol}." if near.symbol else "."),
        )


def users_to_monitor() -> list[int]:
    """Users with something to watch: a limit, a saved profile, an open position or an open alert."""
    from apps.orders.models import Position

    ids = set(RiskLimit.objects.filter(enabled=True).values_list("owner_id", flat=True))
    ids |= set(RiskProfile.objects.values_list("owner_id", flat=True))
    ids |= set(Position.objects.filter(size__gt=0).values_list("owner_id", flat=True))
    ids |= set(RiskAlert.objects.filter(Q(resolved_at__isnull=True)).values_list("owner_id", flat=True))
    return sorted(ids)


def risk_monitor_users(*, user_ids: list[int]) -> int:
    """Monitor each user; one user's failure is logged and does not stop the others."""
    done = 0
    for user_id in user_ids:
        try:
            risk_monitor_user(user_id=user_id)
            done += 1
        except Exception:
            logger.exception("risk monitor failed for user %s", user_id)
    return done


def risk_monitor_all() -> int:
    """The beat job: send the users to the workers in chunks of ``CHUNK_SIZE``; returns the chunks sent."""
    from celery import current_app, group

    ids = users_to_monitor()
    chunks = [ids[i : i + CHUNK_SIZE] for i in range(0, len(ids), CHUNK_SIZE)]
    if chunks:
        group(
            current_app.signature("apps.risk.tasks.risk_monitor_users", kwargs={"user_ids": chunk})
            for chunk in chunks
        ).apply_async()
    return len(chunks)


# ------------------------------------------------------------------ reads
def risk_overview(*, user) -> dict:
    """The user's figures computed now (nothing stored), with the limits' use and the newest snapshot's time."""
    now = timezone.now()
    profile, limits = selectors.risk_limits_for_check(owner_id=user.pk)
    exposure = selectors.risk_exposure(
        owner_id=user.pk, user_timezone=user.timezone, now=now, profile=profile
    )
    f = figures(
        exposure, exchange=user.default_exchange, today=selectors.local_today(user.timezone, now).isoformat()
    )
    daily_limits = [limit.value for limit in limits if limit.kind == checks.DAILY_LOSS and not limit.bot_id]
    latest = selectors.risk_snapshot_latest(user=user)
    equity = f.equity
    return {
        "currency": exposure.currency,
        "equity": equity,
        "peak_equity": exposure.peak_equity,
        "gross_exposure": f.gross,
        "net_exposure": f.net,
        "leverage": f.leverage,
        "margin_level": f.margin_level,
        "liquidation_distance": f.liquidation_distance,
        "daily_pnl": f.daily_pnl,
        "daily_loss_limit": min(daily_limits) if daily_limits else None,
        "drawdown": f.drawdown,
        "var_95": _dec(f.var.var_95) if f.var else None,
        "var_99": _dec(f.var.var_99) if f.var else None,
        "cvar_95": _dec(f.var.cvar_95) if f.var else None,
        "cvar_99": _dec(f.var.cvar_99) if f.var else None,
        "var_days": f.var.days if f.var else 0,
        "score": f.score,
        "components": f.components,
        "kill_switch": exposure.kill_switch,
        "open_positions": len(exposure.positions),
        "open_orders": len(exposure.open_orders),
        "active_alerts": RiskAlert.objects.filter(owner=user, resolved_at__isnull=True).count(),
        "snapshot_at": latest.timestamp if latest else None,
        "computed_at": now,
    }


def risk_exposure_breakdown(*, user) -> dict:
    """Exposure by asset (value, share of equity) and by position, computed now."""
    profile = selectors.risk_profile_get(user=user)
    exposure = selectors.risk_exposure(
        owner_id=user.pk, user_timezone=user.timezone, profile=profile if profile.pk else None
    )
    equity = exposure.equity
    net = checks.net_by_asset(exposure)
    pending = checks.net_by_asset(exposure, with_orders=True)
    assets = [
        {
            "asset": asset,
            "value": value,
            "with_open_orders": pending.get(asset, Decimal("0")),
            "fraction_of_equity": (abs(value) / equity).quantize(Decimal("0.000001")) if equity else None,
        }
        for asset, value in sorted(net.items(), key=lambda item: -abs(item[1]))
    ]
    positions = [
        {
            "account": p.account_key,
            "symbol": p.symbol,
            "size": p.signed_size,
            "mark_price": p.mark,
            "value": p.notional,
            "leverage": p.leverage,
            "liquidation_price": p.liquidation_price,
        }
        for p in sorted(exposure.positions, key=lambda p: (p.symbol, p.account_key))
    ]
    return {"currency": exposure.currency, "equity": equity, "assets": assets, "positions": positions}
