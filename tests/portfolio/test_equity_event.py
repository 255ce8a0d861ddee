"""``portfolio.equity``: each snapshot tells the owner's pages the new point and summary, after the commit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.core import events
from apps.portfolio import services
from tests.factories import PaperAccountFactory

pytestmark = pytest.mark.django_db


def test_a_snapshot_publishes_the_new_equity_and_summary_to_its_owner(
    user, monkeypatch, django_capture_on_commit_callbacks
):
    PaperAccountFactory(user=user, initial_balances={"USDT": "2500.25"})
    sent = []
    monkeypatch.setattr(
        events, "_send", lambda group, _user_id, kind, payload: sent.append((group, kind, payload))
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        snapshot = services.snapshot_take(user=user)
    assert [kind for _, kind, _ in sent] == []  # nothing before the commit
    for callback in callbacks:
        callback()
    [(group, _kind, payload)] = [s for s in sent if s[1] == "portfolio.equity"]
    assert group == events.user_group(user.pk)
    assert payload["timestamp"] == snapshot.timestamp.isoformat().replace("+00:00", "Z")
    assert payload["currency"] == snapshot.currency
    assert Decimal(payload["equity"]) == Decimal("2500.25") == Decimal(payload["cash"])
    assert Decimal(payload["total_pnl"]) == Decimal(payload["equity"]) - Decimal(payload["net_deposits"])
    assert payload["today_pnl"] is not None and payload["positions_value"] is not None
