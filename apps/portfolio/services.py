"""Writes for portfolio history: snapshots of every account, cash flows, and tier compaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.core.errors import DomainError, ValidationFailed
from apps.core.events import publish_event
from apps.core.money import AMOUNT_DIGITS, AMOUNT_PLACES, ZERO, quantize_amount
from apps.exchanges.gateway.base import ExchangeGateway
from apps.exchanges.models import ExchangeConnection, PaperAccount
from apps.exchanges.services import gateway_for_connection, paper_gateway
from apps.portfolio.models import AccountSnapshot, CashFlow, EquitySnapshot, Tier
from apps.portfolio.selectors import portfolio_summary
from apps.portfolio.valuation import Pricer, valuation_currency

logger = logging.getLogger(__name__)

#: How long each tier's points are kept before they are folded into the next one.
MINUTE_POINTS_FOR = timedelta(days=1)
HOUR_POINTS_FOR = timedelta(days=30)
LIVE_TIMEOUT_SECONDS = 10


@transaction.atomic
def equity_snapshot_record(*, user, equity: Decimal, currency: str, timestamp: datetime) -> EquitySnapshot:
    """Store the account value at ``timestamp``; recording the same time twice replaces the value.

    Idempotent so that a retried snapshot task never leaves two points at one time.
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(equity, Decimal) or not equity.is_finite():
        errors["equity"] = ["Expected a finite Decimal."]
    elif abs(equity) >= Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES):
        errors["equity"] = ["Too large."]
    currency = (currency or "").strip().upper()
    if not currency or len(currency) > 20:
        errors["currency"] = ["Expected an asset code such as USDT."]
    if timezone.is_naive(timestamp):
        errors["timestamp"] = ["Expected a timezone-aware datetime."]
    if errors:
        raise ValidationFailed("Invalid equity snapshot.", fields=errors)
    snapshot, _ = EquitySnapshot.objects.update_or_create(
        owner=user, currency=currency, timestamp=timestamp, defaults={"equity": equity}
    )
    return snapshot


# ------------------------------------------------------------------ valuing accounts
@dataclass
class AccountValue:
    """One account valued in ``currency``: cash (the currency itself), everything else, the total."""

    currency: str
    cash: Decimal = ZERO
    positions_value: Decimal = ZERO
    assets: dict[str, dict[str, str]] = field(default_factory=dict)
    unpriced: list[str] = field(default_factory=list)

    @property
    def equity(self) -> Decimal:
        return self.cash + self.positions_value


def _gateway(account) -> tuple[ExchangeGateway, str]:
    if isinstance(account, PaperAccount):
        # A snapshot values the account as it stands: it never fills orders (matching belongs to
        # the paper exchange's own jobs and to the account's trading calls).
        return paper_gateway(account, match_on_read=False), account.exchange
    return gateway_for_connection(account, timeout_seconds=LIVE_TIMEOUT_SECONDS), account.exchange


def _wants_positions(account) -> bool:
    if isinstance(account, PaperAccount):
        return account.market_type == PaperAccount.MarketType.FUTURES
    return account.can_trade_futures


def account_value(*, account, currency: str, gateway: ExchangeGateway | None = None) -> AccountValue:
    """Balances (and futures positions' unrealized P&L) of ``account`` valued in ``currency``.

    Raises the gateway's ``DomainError`` when the exchange cannot be read.
    """
    default_gateway, exchange = _gateway(account) if gateway is None else (gateway, account.exchange)
    gateway = gateway or default_gateway
    pricer = Pricer(exchange=exchange, currency=currency)
    value = AccountValue(currency=currency)
    for asset, balance in sorted(gateway.fetch_balance().balances.items()):
        if not balance.total:
            continue
        price = pricer.price(asset)
        if price is None:
            value.unpriced.append(asset)
            continue
        worth = quantize_amount(balance.total * price)
        value.assets[asset] = {"amount": str(balance.total), "price": str(price), "value": str(worth)}
        if asset == currency:
            value.cash += worth
        else:
            value.positions_value += worth
    if _wants_positions(account):
        for position in gateway.fetch_positions():
            if not position.unrealized_pnl:
                continue
            quote = position.symbol.split("/", 1)[-1].split(":", 1)[0]
            price = pricer.price(quote)
            if price is None:
                value.unpriced.append(position.symbol)
                continue
            value.positions_value += quantize_amount(position.unrealized_pnl * price)
    return value


def _account_fk(account) -> dict:
    return {"paper_account": account} if isinstance(account, PaperAccount) else {"connection": account}


def _accounts(user) -> list:
    paper = list(PaperAccount.objects.trading().filter(user=user).order_by("id"))
    live = list(ExchangeConnection.objects.alive().filter(user=user).order_by("id"))
    return [*paper, *live]


def _record_flows(*, user, account, value: AccountValue, timestamp: datetime, pricer_exchange: str) -> None:
    """Opening balances and paper resets become cash flows, so they never count as P&L."""
    fk = _account_fk(account)
    last = (
        AccountSnapshot.objects.filter(**fk, currency=value.currency)
        .order_by("-timestamp", "-id")
        .only("timestamp", "equity")
        .first()
    )
    if last is None:
        CashFlow.objects.create(
            owner=user,
            **fk,
            timestamp=timestamp,
            kind=CashFlow.Kind.OPENING,
            amount=value.equity,
            currency=value.currency,
            note="first valuation of the account",
        )
        return
    reset_at = getattr(account, "reset_at", None)
    if reset_at and last.timestamp < reset_at <= timestamp:
        # The reset took the old equity out and put the initial balances in.
        pricer = Pricer(exchange=pricer_exchange, currency=value.currency)
        initial = ZERO
        for asset, amount in (account.initial_balances or {}).items():
            price = pricer.price(asset)
            initial += Decimal(str(amount)) * price if price is not None else ZERO
        CashFlow.objects.create(
            owner=user,
            **fk,
            timestamp=reset_at,
            kind=CashFlow.Kind.PAPER_RESET,
            amount=quantize_amount(initial - last.equity),
            currency=value.currency,
            note=f"reset from {last.equity.normalize()} to {quantize_amount(initial).normalize()}",
        )


def snapshot_take(*, user, timestamp: datetime | None = None) -> EquitySnapshot | None:
    """Value every account of ``user`` now and store one point per account plus the total.

    Points are stamped to the minute, so a snapshot after a fill and the beat's in
    the same minute are one point (the later value). An account whose exchange
    cannot be read keeps its last value in the total (logged), rather than
    showing as a drop to zero. None when the user has no account.
    """
    accounts = _accounts(user)
    if not accounts:
        return None
    when = (timestamp or timezone.now()).replace(second=0, microsecond=0)
    currency = valuation_currency(user.display_currency)
    total = AccountValue(currency=currency)
    fresh: list[tuple[object, AccountValue]] = []
    for account in accounts:
        try:
            value = account_value(account=account, currency=currency)
        except DomainError as exc:
            logger.warning("portfolio: account %s of user %s not valued: %s", account, user.pk, exc)
            last = (
                AccountSnapshot.objects.filter(**_account_fk(account), currency=currency)
                .order_by("-timestamp")
                .first()
            )
            if last is not None:
                total.cash += last.cash
                total.positions_value += last.positions_value
            continue
        fresh.append((account, value))
        total.cash += value.cash
        total.positions_value += value.positions_value
    with transaction.atomic():
        for account, value in fresh:
            _record_flows(
                user=user, account=account, value=value, timestamp=when, pricer_exchange=account.exchange
            )
            fk = _account_fk(account)
            AccountSnapshot.objects.filter(**fk, timestamp=when).delete()
            AccountSnapshot.objects.create(
                owner=user,
                **fk,
                timestamp=when,
                currency=currency,
                equity=value.equity,
                cash=value.cash,
                positions_value=value.positions_value,
                assets=value.assets,
                unpriced=value.unpriced,
            )
        snapshot, _ = EquitySnapshot.objects.update_or_create(
            owner=user,
            currency=currency,
            timestamp=when,
            defaults={
                "equity": total.equity,
                "cash": total.cash,
                "positions_value": total.positions_value,
                "tier": Tier.MINUTE,
            },
        )
    publish_event(user.pk, EQUITY_EVENT, equity_payload(user=user, snapshot=snapshot), on_commit=True)
    return snapshot


#: Sent after each snapshot: the home and portfolio pages move their equity and P&L with it.
EQUITY_EVENT = "portfolio.equity"


def equity_payload(*, user, snapshot: EquitySnapshot) -> dict:
    """The ``portfolio.equity`` event: the new point and the summary it changes (decimal strings)."""
    summary = portfolio_summary(user=user)
    amounts = ("equity", "cash", "positions_value", "today_pnl", "total_pnl", "net_deposits")
    return {
        "timestamp": snapshot.timestamp.isoformat().replace("+00:00", "Z"),
        "currency": snapshot.currency,
        **{name: None if summary[name] is None else str(summary[name]) for name in amounts},
    }


def snapshot_users() -> list[int]:
    """Ids of the users that have an account to value."""
    paper = PaperAccount.objects.trading().values_list("user_id", flat=True)
    live = ExchangeConnection.objects.alive().values_list("user_id", flat=True)
    return sorted(set(paper) | set(live))


# ------------------------------------------------------------------ compaction
def _floor(moment: datetime, unit: str) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == "day" else moment


def _fold(
    model, *, key_fields: tuple[str, ...], source: str, target: str, before: datetime, unit: str
) -> int:
    """Keep the last ``source`` point of each hour/day before ``before`` as a ``target`` point."""
    rows = (
        model.objects.filter(tier=source, timestamp__lt=before)
        .order_by("timestamp", "id")
        .values_list("id", "timestamp", *key_fields)
    )
    last: dict[tuple, int] = {}
    ids: list[int] = []
    for pk, ts, *key in rows.iterator(chunk_size=5000):
        last[(*key, _floor(ts, unit))] = pk
        ids.append(pk)
    keep = set(last.values())
    drop = [pk for pk in ids if pk not in keep]
    for start in range(0, len(drop), 5000):
        model.objects.filter(pk__in=drop[start : start + 5000]).delete()
    model.objects.filter(pk__in=keep).update(tier=target)
    return len(drop)


@transaction.atomic
def snapshots_compact(*, now: datetime | None = None) -> int:
    """Fold minute points older than a day into hourly ones, hourly older than 30 days into daily.

    The kept point is the last of its hour (day): the equity at its close. Only
    whole hours (days) past the limit are folded, so a bucket is never cut in two.
    Returns how many points were removed.
    """
    now = now or timezone.now()
    removed = 0
    for model, key in (
        (EquitySnapshot, ("owner_id", "currency")),
        (AccountSnapshot, ("paper_account_id", "connection_id", "currency")),
    ):
        removed += _fold(
            model,
            key_fields=key,
            source=Tier.MINUTE,
            target=Tier.HOUR,
            before=_floor(now - MINUTE_POINTS_FOR, "hour"),
            unit="hour",
        )
        removed += _fold(
            model,
            key_fields=key,
            source=Tier.HOUR,
            target=Tier.DAY,
            before=_floor(now - HOUR_POINTS_FOR, "day"),
            unit="day",
        )
    return removed


def cash_flow_record(
    *, user, account, amount: Decimal, currency: str, timestamp: datetime, note: str = ""
) -> CashFlow:
    """Record a deposit (amount > 0) or withdrawal (< 0) on one of the user's accounts."""
    errors: dict[str, list[str]] = {}
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount == 0:
        errors["amount"] = ["Expected a non-zero finite amount."]
    if getattr(account, "user_id", None) != user.pk:
        errors["account"] = ["Not one of your accounts."]
    if errors:
        raise ValidationFailed("Invalid cash flow.", fields=errors)
    return CashFlow.objects.create(
        owner=user,
        **_account_fk(account),
        timestamp=timestamp,
        kind=CashFlow.Kind.DEPOSIT if amount > 0 else CashFlow.Kind.WITHDRAWAL,
        amount=amount,
        currency=currency.upper(),
        note=note,
    )
