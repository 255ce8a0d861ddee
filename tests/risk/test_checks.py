"""The pure risk rules: every limit at its boundary (below passes, at passes, above fails), closing orders pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.risk import checks
from apps.risk.checks import Exposure, Limit, OpenOrderState, OrderIntent, PositionState

ACCOUNT = "paper:1"
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def order(amount="1", price="100", side="buy", symbol="BTC/USDT", **kw) -> OrderIntent:
    return OrderIntent(
        symbol=symbol, side=side, amount=Decimal(amount), price=Decimal(price), account_key=ACCOUNT, **kw
    )


def exposure(**kw) -> Exposure:
    kw.setdefault("equity", Decimal("1000"))
    kw.setdefault("now", NOW)
    return Exposure(**kw)


def position(size, symbol="BTC/USDT", mark="100", account=ACCOUNT) -> PositionState:
    return PositionState(account, symbol, Decimal(size), Decimal(mark))


def codes(breaches) -> list[str]:
    return [b.code for b in breaches]


# (kind, limit value, exposure, [order just below, at, above the limit])
BOUNDARIES = [
    # 5 BTC held + buy -> 9.99 / 10 / 10.01 BTC vs 10
    ("position_quantity", "10", {"positions": [position("5")]}, ["4.99", "5", "5.01"]),
    # 2 BTC at 100 held + buy -> 499 / 500 / 501 vs 500
    ("position_notional", "500", {"positions": [position("2")]}, ["2.99", "3", "3.01"]),
    # one order: 99 / 100 / 101 vs 100
    ("order_notional", "100", {}, ["0.99", "1", "1.01"]),
    # exposure 0.5 of equity 1000 = 500: (2 held + x) * 100
    ("asset_exposure", "0.5", {"positions": [position("2")]}, ["2.99", "3", "3.01"]),
    # total: 2 BTC (200) + 1 ETH short (-100 -> 100 abs) + x BTC vs 0.6 = 600
    (
        "total_exposure",
        "0.6",
        {"positions": [position("2"), position("-1", "ETH/USDT")]},
        ["2.99", "3", "3.01"],
    ),
    # gross leverage: (2 BTC + x) * 100 / 1000 vs 2
    ("leverage", "2", {"positions": [position("2")]}, ["17.99", "18", "18.01"]),
]


@pytest.mark.parametrize(("kind", "value", "state", "amounts"), BOUNDARIES, ids=[b[0] for b in BOUNDARIES])
def test_each_limit_passes_below_and_at_its_value_and_fails_above(kind, value, state, amounts):
    limit = Limit(kind=kind, value=Decimal(value), id=7)
    below, at, above = (checks.order_breaches(order(a), [limit], exposure(**state)) for a in amounts)
    assert below == [] and at == []
    assert codes(above) == [kind]
    assert above[0].limit_id == 7 and above[0].measured > above[0].threshold == Decimal(value)


def test_open_orders_counts_the_new_order():
    limit = Limit(kind="open_orders", value=Decimal("3"))
    resting = [OpenOrderState(ACCOUNT, "BTC/USDT", Decimal("1"), Decimal("90"))]
    assert checks.order_breaches(order(), [limit], exposure(open_orders=resting)) == []  # 2nd of 3
    assert checks.order_breaches(order(), [limit], exposure(open_orders=resting * 2)) == []  # 3rd of 3
    breach = checks.order_breaches(order(), [limit], exposure(open_orders=resting * 3))  # 4th
    assert codes(breach) == ["open_orders"] and breach[0].measured == 4


@pytest.mark.parametrize(("pnl", "blocked"), [("-99.99", False), ("-100", False), ("-100.01", True)])
def test_daily_loss_blocks_new_orders_only_beyond_the_limit(pnl, blocked):
    limit = Limit(kind="daily_loss", value=Decimal("100"), action="pause_bot")
    breaches = checks.order_breaches(order(), [limit], exposure(daily_pnl=Decimal(pnl)))
    assert codes(breaches) == (["daily_loss"] if blocked else [])
    if blocked:
        assert breaches[0].action == "pause_bot" and breaches[0].measured == Decimal("100.01")


@pytest.mark.parametrize(("equity", "blocked"), [("800.01", False), ("800", False), ("799.99", True)])
def test_drawdown_from_peak(equity, blocked):
    limit = Limit(kind="drawdown", value=Decimal("0.2"))
    state = exposure(equity=Decimal(equity), peak_equity=Decimal("1000"))
    assert codes(checks.order_breaches(order("0.1"), [limit], state)) == (["drawdown"] if blocked else [])


@pytest.mark.parametrize(("losses", "blocked"), [(2, False), (3, True), (4, True)])
def test_losing_streak_cools_down_when_the_streak_reaches_its_count(losses, blocked):
    limit = Limit(kind="losing_streak", value=Decimal("3"), cooldown_minutes=30)
    state = exposure(consecutive_losses=losses, last_loss_at=NOW - timedelta(minutes=10))
    assert codes(checks.order_breaches(order(), [limit], state)) == (["losing_streak"] if blocked else [])


def test_losing_streak_cool_down_ends():
    limit = Limit(kind="losing_streak", value=Decimal("3"), cooldown_minutes=30)
    state = exposure(consecutive_losses=5, last_loss_at=NOW - timedelta(minutes=30))
    assert checks.order_breaches(order(), [limit], state) == []


def test_reduce_only_and_closing_orders_pass_every_exposure_limit_and_the_kill_switch():
    limits = [
        Limit(kind=kind, value=Decimal("0.0001"))
        for kind in (
            "position_quantity",
            "position_notional",
            "order_notional",
            "leverage",
            "asset_exposure",
            "total_exposure",
        )
    ]
    state = exposure(positions=[position("5")], kill_switch=True, daily_pnl=Decimal("-1e6"))
    assert checks.order_breaches(order("5", side="sell"), limits, state) == []  # closes the whole long
    assert checks.order_breaches(order("2", side="sell", reduce_only=True), limits, state) == []
    # Selling more than held would open a short: not closing.
    assert "kill_switch" in codes(checks.order_breaches(order("6", side="sell"), limits, state))
    # A spot "reduce-only" buy with nothing short to reduce opens a position: checked.
    assert checks.order_breaches(order("1", reduce_only=True), limits, state)


def test_kill_switch_refuses_opening_orders():
    breaches = checks.order_breaches(order(), [], exposure(kill_switch=True))
    assert codes(breaches) == ["kill_switch"]


def test_scope_narrows_a_limit_to_its_bot_account_and_market():
    tiny = Decimal("0.0001")
    assert checks.order_breaches(order(bot_id=2), [Limit("order_notional", tiny, bot_id=1)], exposure()) == []
    assert (
        checks.order_breaches(order(), [Limit("order_notional", tiny, account_key="paper:9")], exposure())
        == []
    )
    assert (
        checks.order_breaches(order(), [Limit("order_notional", tiny, symbol="ETH/USDT")], exposure()) == []
    )
    assert checks.order_breaches(order(bot_id=1), [Limit("order_notional", tiny, bot_id=1)], exposure())
    assert checks.order_breaches(order(), [Limit("asset_exposure", tiny, asset="ETH")], exposure()) == []


def test_open_orders_add_to_the_projected_position():
    limit = Limit(kind="position_quantity", value=Decimal("10"))
    resting = [OpenOrderState(ACCOUNT, "BTC/USDT", Decimal("6"), Decimal("90"))]
    assert checks.order_breaches(order("4"), [limit], exposure(open_orders=resting)) == []
    assert checks.order_breaches(order("4.01"), [limit], exposure(open_orders=resting))


def test_equity_limits_are_skipped_while_equity_is_unknown_and_refuse_without_equity():
    limit = Limit(kind="leverage", value=Decimal("1"))
    assert checks.order_breaches(order(), [limit], exposure(equity=None)) == []
    assert codes(checks.order_breaches(order(), [limit], exposure(equity=Decimal("0")))) == ["leverage"]


def test_breach_messages_carry_the_numbers():
    [breach] = checks.order_breaches(order("2"), [Limit("order_notional", Decimal("150"), label="Max order notional")],
                                     exposure())  # fmt: skip
    assert "200 USDT" in breach.message and "150 USDT" in breach.message
    assert breach.as_dict()["measured"] == "200" and breach.as_dict()["threshold"] == "150"


def test_portfolio_breaches_without_an_order():
    limits = [
        Limit("daily_loss", Decimal("50"), id=1),
        Limit("asset_exposure", Decimal("0.1"), id=2),
        Limit("position_quantity", Decimal("1"), id=3, symbol="ETH/USDT"),
        Limit("order_notional", Decimal("1"), id=4),  # about orders only
    ]
    state = exposure(daily_pnl=Decimal("-60"), positions=[position("2"), position("0.5", "ETH/USDT")])
    found = {(b.limit_id, b.symbol) for b in checks.portfolio_breaches(limits, state)}
    assert found == {(1, ""), (2, "BTC")}
