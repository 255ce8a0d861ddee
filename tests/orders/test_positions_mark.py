"""Open positions are marked to the current price between fills (the ``orders: mark open
positions`` beat job), so their unrealized P&L follows the market on every page."""

from __future__ import annotations

import types
from decimal import Decimal

import pytest

from apps.core import events
from apps.marketdata import live
from apps.orders import services
from apps.orders.models import Position
from tests.support.cache import clear_cache

HOUR = 3_600_000

pytestmark = pytest.mark.django_db


@pytest.fixture
def at_candle(candles_stored, settings, monkeypatch):
    """The offline replay feed pinned at candle ``k`` of the stored series; returns a mover."""
    settings.MARKETDATA_REPLAY_SPEED = 1

    def move(k: int) -> Decimal:
        wall_ms = (10_000 * len(candles_stored.timestamp) + k) * HOUR + 1
        monkeypatch.setattr(live, "time", types.SimpleNamespace(time=lambda: wall_ms / 1000))
        clear_cache()
        return Decimal(live.ticker(exchange="binance", symbol="BTC/USDT")["last"])

    return move


def test_an_open_position_is_marked_to_the_current_price_and_published(
    at_candle, paper_account, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(events, "_send", lambda group, _user_id, kind, payload: sent.append((kind, payload)))
    price = at_candle(100)
    position = Position.objects.create(
        owner=paper_account.user,
        paper_account=paper_account,
        symbol="BTC/USDT",
        side=Position.Side.LONG,
        size=Decimal("0.5"),
        average_entry=price - Decimal("1000"),
        mark_price=price - Decimal("1000"),
    )
    flat = Position.objects.create(owner=paper_account.user, paper_account=paper_account, symbol="ETH/USDT")

    with django_capture_on_commit_callbacks(execute=True):
        assert services.positions_mark() == 1
    position.refresh_from_db()
    assert position.mark_price == price
    assert position.unrealized_pnl == Decimal("500")  # 0.5 x (price - entry), to the unit
    assert [(kind, payload["id"], payload["unrealized_pnl"]) for kind, payload in sent] == [
        ("position.updated", position.pk, str(position.unrealized_pnl))
    ]
    flat.refresh_from_db()
    assert flat.mark_price is None and flat.unrealized_pnl == 0

    # Same price: nothing to write or send. A later price: marked again, for a short too.
    assert services.positions_mark() == 0
    later = at_candle(140)
    Position.objects.filter(pk=position.pk).update(side=Position.Side.SHORT)
    assert services.positions_mark() == 1
    position.refresh_from_db()
    assert position.unrealized_pnl == (position.average_entry - later) * Decimal("0.5")


def test_a_market_without_a_price_is_left_alone(paper_account, db):
    position = Position.objects.create(
        owner=paper_account.user,
        paper_account=paper_account,
        symbol="NOPE/USDT",
        side=Position.Side.LONG,
        size=Decimal("1"),
        average_entry=Decimal("10"),
        mark_price=Decimal("10"),
    )
    assert services.positions_mark() == 0
    position.refresh_from_db()
    assert position.mark_price == Decimal("10") and position.unrealized_pnl == 0


def test_the_beat_job_is_declared():
    from apps.orders.tasks import PERIODIC_TASKS

    assert ("apps.orders.tasks.positions_mark", 10) in [(s.task, s.seconds) for s in PERIODIC_TASKS]
