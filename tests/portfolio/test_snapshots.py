"""Snapshots of paper accounts, cash flows kept apart from P&L, compaction into tiers, the fill hook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.core.schedules import declared_schedules
from apps.exchanges import services as exchange_services
from apps.portfolio import selectors, services
from apps.portfolio.models import AccountSnapshot, CashFlow, EquitySnapshot, Tier
from tests.factories import FillFactory, OrderFactory, PaperAccountFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_snapshot_values_a_paper_account_and_records_the_opening_balance(user):
    account = PaperAccountFactory(user=user, initial_balances={"USDT": "2500.5"})
    snapshot = services.snapshot_take(user=user, timestamp=NOW + timedelta(seconds=42))
    assert snapshot.timestamp == NOW  # stamped to the minute
    assert (snapshot.equity, snapshot.cash, snapshot.positions_value) == (
        Decimal("2500.5"),
        Decimal("2500.5"),
        0,
    )
    assert snapshot.currency == "USDT"  # display currency USD is valued as USDT
    row = AccountSnapshot.objects.get(paper_account=account)
    assert row.assets["USDT"]["amount"] == "2500.500000000000000000"
    flow = CashFlow.objects.get(paper_account=account)
    assert (flow.kind, flow.amount) == (CashFlow.Kind.OPENING, Decimal("2500.5"))
    summary = selectors.portfolio_summary(user=user)
    assert summary["total_pnl"] == 0 and summary["equity"] == Decimal("2500.5")


def test_a_paper_reset_is_a_cash_flow_not_a_loss(user):
    account = PaperAccountFactory(user=user, initial_balances={"USDT": "10000"})
    services.snapshot_take(user=user, timestamp=timezone.now() - timedelta(hours=1))
    exchange_services.paper_account_set_balances(account=account, balances={"USDT": "4000"})
    services.snapshot_take(user=user, timestamp=timezone.now() + timedelta(minutes=1))
    reset = CashFlow.objects.get(kind=CashFlow.Kind.PAPER_RESET)
    assert reset.amount == Decimal("-6000")
    summary = selectors.portfolio_summary(user=user)
    assert summary["equity"] == Decimal("4000")
    assert summary["total_pnl"] == 0 and summary["net_deposits"] == Decimal("4000")


def test_same_minute_snapshots_are_one_point(user):
    PaperAccountFactory(user=user)
    services.snapshot_take(user=user, timestamp=NOW)
    services.snapshot_take(user=user, timestamp=NOW + timedelta(seconds=30))
    assert EquitySnapshot.objects.filter(owner=user).count() == 1
    assert AccountSnapshot.objects.filter(owner=user).count() == 1


def test_a_user_without_accounts_gets_no_snapshot(user):
    assert services.snapshot_take(user=user, timestamp=NOW) is None
    assert services.snapshot_users() == []


def test_compaction_keeps_minute_hour_and_day_tiers(user, other_user):
    start = NOW - timedelta(days=40)
    points = int(timedelta(days=40) / timedelta(minutes=10))
    EquitySnapshot.objects.bulk_create(
        EquitySnapshot(
            owner=owner,
            timestamp=start + timedelta(minutes=10 * i),
            equity=Decimal(i),
            currency="USDT",
        )
        for owner in (user, other_user)
        for i in range(points)
    )
    removed = services.snapshots_compact(now=NOW)
    rows = list(EquitySnapshot.objects.filter(owner=user).order_by("timestamp"))
    minute = [r for r in rows if r.tier == Tier.MINUTE]
    hour = [r for r in rows if r.tier == Tier.HOUR]
    day = [r for r in rows if r.tier == Tier.DAY]
    # Minute points: the last day (from the hour it started); hourly: the 30 days before; daily: the rest.
    assert minute[0].timestamp == NOW - timedelta(days=1)
    assert len(minute) == 6 * 24
    assert len(hour) == 29 * 24 + 12  # whole days only: from midnight 30 days back
    assert hour[0].timestamp == datetime(2026, 10, 31, 0, 50, tzinfo=UTC)
    assert len(day) == 10
    # The kept point is the close of its bucket: the last value of the day / hour.
    assert [r.timestamp.time().isoformat() for r in day] == ["23:50:00"] * 10
    assert all(r.timestamp.minute == 50 for r in hour)
    assert removed == 2 * (points - len(rows))
    assert EquitySnapshot.objects.filter(owner=other_user).count() == len(rows)
    # Compacting again changes nothing.
    assert services.snapshots_compact(now=NOW) == 0


def test_a_year_of_snapshots_is_small():
    # 1,440 minute points + 720 hourly + ~335 daily per account, whatever the year's length.
    per_account = 24 * 60 + 30 * 24 + 335
    assert per_account < 2_600


def test_a_fill_schedules_one_debounced_snapshot(user, django_capture_on_commit_callbacks):
    cache.delete(f"portfolio:fill-snapshot:{user.pk}")
    order = OrderFactory(owner=user)
    with django_capture_on_commit_callbacks(execute=True):
        FillFactory(order=order)
        FillFactory(order=order)
    assert cache.get(f"portfolio:fill-snapshot:{user.pk}") == 1


def test_the_snapshot_job_is_scheduled():
    names = {s.task for s in declared_schedules()}
    assert "apps.portfolio.tasks.portfolio_snapshot_all" in names


def test_a_snapshot_values_a_paper_account_without_filling_its_orders(monkeypatch):
    """Valuing is a read: it must not run the paper exchange's matching (which fills orders)."""
    from apps.exchanges.gateway.paper import PaperGateway
    from apps.portfolio import services as portfolio_services
    from tests.factories import PaperAccountFactory

    account = PaperAccountFactory(initial_balances={"USDT": "1000"})
    passes = []
    monkeypatch.setattr(PaperGateway, "match", lambda self, symbol=None: passes.append(symbol) or 0)
    value = portfolio_services.account_value(account=account, currency="USDT")
    assert value.cash == 1000 and passes == []
    PaperGateway(account).fetch_balance()  # a trading read still matches first
    assert passes == [None]
