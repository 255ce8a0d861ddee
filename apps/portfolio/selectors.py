"""Reads for portfolio history and analytics, always scoped to their owner.

Each selector reads the rows once into arrays and hands them to the pure
functions in ``apps.portfolio.analytics``. ``account`` filters are a
``PaperAccount`` or ``ExchangeConnection`` already checked to be the user's
(``account_resolve``). Amounts read from snapshots are in the user's valuation
currency (``apps.portfolio.valuation``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.apps import apps
from django.core.cache import cache
from django.db.models import Count, Max, OuterRef, QuerySet, Subquery, Sum
from django.utils import timezone

from apps.backtests.engine.metrics import DAY_MS
from apps.core.errors import DomainError, NotFound
from apps.core.money import ZERO
from apps.exchanges.models import ExchangeConnection, PaperAccount
from apps.marketdata.selectors import candles
from apps.portfolio import analytics
from apps.portfolio.models import AccountSnapshot, CashFlow, EquitySnapshot
from apps.portfolio.valuation import valuation_currency

ACCOUNT_RE = re.compile(r"^(paper|live):(\d{1,18})$")
BENCHMARK_SYMBOL = "BTC/USDT"
TRADES_CACHE_SECONDS = 600


def equity_snapshot_list(
    *,
    user,
    start: datetime | None = None,
    end: datetime | None = None,
    currency: str | None = None,
) -> QuerySet[EquitySnapshot]:
    """The user's snapshots, newest first; ``start`` inclusive, ``end`` exclusive."""
    qs = EquitySnapshot.objects.filter(owner=user)
    if start is not None:
        qs = qs.filter(timestamp__gte=start)
    if end is not None:
        qs = qs.filter(timestamp__lt=end)
    if currency:
        qs = qs.filter(currency=currency.upper())
    return qs


def equity_latest(*, user) -> list[EquitySnapshot]:
    """The newest snapshot in each currency the user has, by currency."""
    # A correlated subquery rather than PostgreSQL's DISTINCT ON: the embedded default runs on SQLite.
    newest = (
        EquitySnapshot.objects.filter(owner=user, currency=OuterRef("currency"))
        .order_by("-timestamp", "-id")
        .values("pk")[:1]
    )
    return list(EquitySnapshot.objects.filter(owner=user, pk=Subquery(newest)).order_by("currency"))


# ------------------------------------------------------------------ accounts and ranges
def account_key(account) -> str:
    return f"paper:{account.pk}" if isinstance(account, PaperAccount) else f"live:{account.pk}"


def account_label(account) -> str:
    if isinstance(account, PaperAccount):
        return f"Paper (bot {account.bot_id})" if account.bot_id else "Paper account"
    return f"{account.label} ({account.exchange})"


def account_list(*, user) -> list:
    """The user's paper accounts and live connections (the account filter's choices)."""
    return [
        *PaperAccount.objects.trading().filter(user=user).order_by("id"),
        *ExchangeConnection.objects.alive().filter(user=user).order_by("id"),
    ]


def account_resolve(*, user, key: str | None):
    """``"paper:<id>"`` or ``"live:<id>"`` to the user's account; ``NotFound`` for anyone else's."""
    if not key:
        return None
    match = ACCOUNT_RE.match(key)
    if match is None:
        raise NotFound("Account not found.")
    kind, pk = match.group(1), int(match.group(2))
    qs = PaperAccount.objects.trading() if kind == "paper" else ExchangeConnection.objects.alive()
    account = qs.filter(user=user, pk=pk).first()
    if account is None:
        raise NotFound("Account not found.")
    return account


def _fk(account) -> dict:
    if account is None:
        return {}
    return {"paper_account": account} if isinstance(account, PaperAccount) else {"connection": account}


@dataclass(frozen=True)
class Range:
    start: datetime | None = None
    end: datetime | None = None

    def filter(self, qs: QuerySet, field: str = "timestamp") -> QuerySet:
        if self.start is not None:
            qs = qs.filter(**{f"{field}__gte": self.start})
        if self.end is not None:
            qs = qs.filter(**{f"{field}__lt": self.end})
        return qs


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _currency(user) -> str:
    return valuation_currency(user.display_currency)


def _snapshots(*, user, account=None) -> QuerySet:
    if account is None:
        return EquitySnapshot.objects.filter(owner=user, currency=_currency(user))
    return AccountSnapshot.objects.filter(owner=user, currency=_currency(user), **_fk(account))


def _flows(*, user, account=None) -> QuerySet:
    return CashFlow.objects.filter(owner=user, currency=_currency(user), **_fk(account))


def equity_arrays(*, user, account=None, span: Range = Range()) -> tuple[np.ndarray, np.ndarray]:
    """Snapshot times (ms) and equity, oldest first."""
    rows = (
        span.filter(_snapshots(user=user, account=account))
        .order_by("timestamp")
        .values_list("timestamp", "equity")
    )
    rows = list(rows)
    ts = np.fromiter((_ms(t) for t, _ in rows), dtype=np.int64, count=len(rows))
    eq = np.fromiter((float(e) for _, e in rows), dtype=np.float64, count=len(rows))
    return ts, eq


def flow_arrays(*, user, account=None, span: Range = Range()) -> tuple[np.ndarray, np.ndarray]:
    rows = list(
        span.filter(_flows(user=user, account=account))
        .order_by("timestamp")
        .values_list("timestamp", "amount")
    )
    ts = np.fromiter((_ms(t) for t, _ in rows), dtype=np.int64, count=len(rows))
    amount = np.fromiter((float(a) for _, a in rows), dtype=np.float64, count=len(rows))
    return ts, amount


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


# ------------------------------------------------------------------ views of the portfolio
def portfolio_summary(*, user, account=None) -> dict[str, Any]:
    """Equity, cash, positions value, today's and total P&L (flows excluded), as Decimals."""
    currency = _currency(user)
    latest = _snapshots(user=user, account=account).order_by("-timestamp", "-id").first()
    empty = {
        "currency": currency,
        "as_of": None,
        "equity": None,
        "cash": None,
        "positions_value": None,
        "today_pnl": None,
        "total_pnl": None,
        "net_deposits": None,
        "accounts": len(account_list(user=user)) if account is None else 1,
    }
    if latest is None:
        return empty
    day_start = latest.timestamp.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    before = (
        _snapshots(user=user, account=account).filter(timestamp__lt=day_start).order_by("-timestamp").first()
    )
    flows = _flows(user=user, account=account)
    net = flows.aggregate(s=Sum("amount"))["s"] or ZERO
    today_flows = flows.filter(timestamp__gte=day_start).aggregate(s=Sum("amount"))["s"] or ZERO
    start_of_day = before.equity if before is not None else ZERO
    return {
        **empty,
        "as_of": latest.timestamp,
        "equity": latest.equity,
        "cash": latest.cash,
        "positions_value": latest.positions_value,
        "today_pnl": latest.equity - start_of_day - today_flows,
        "total_pnl": latest.equity - net,
        "net_deposits": net,
    }


def _latest_account_snapshots(*, user, account=None) -> list[AccountSnapshot]:
    currency = _currency(user)
    accounts = [account] if account is not None else account_list(user=user)
    out = []
    for acc in accounts:
        snap = (
            AccountSnapshot.objects.filter(owner=user, currency=currency, **_fk(acc))
            .order_by("-timestamp", "-id")
            .first()
        )
        if snap is not None:
            out.append((acc, snap))
    return out


def balances(*, user, account=None) -> dict[str, Any]:
    """The newest balances of each account, and per asset across them."""
    rows = []
    totals: dict[str, dict[str, Decimal]] = {}
    for acc, snap in _latest_account_snapshots(user=user, account=account):
        assets = []
        for asset, v in sorted(snap.assets.items()):
            amount, value = Decimal(v["amount"]), Decimal(v["value"])
            assets.append({"asset": asset, "amount": amount, "price": Decimal(v["price"]), "value": value})
            total = totals.setdefault(asset, {"amount": ZERO, "value": ZERO})
            total["amount"] += amount
            total["value"] += value
        rows.append(
            {
                "account": account_key(acc),
                "label": account_label(acc),
                "as_of": snap.timestamp,
                "equity": snap.equity,
                "cash": snap.cash,
                "positions_value": snap.positions_value,
                "assets": assets,
                "unpriced": snap.unpriced,
            }
        )
    by_asset = [{"asset": a, **t} for a, t in sorted(totals.items(), key=lambda kv: -kv[1]["value"])]
    return {"currency": _currency(user), "accounts": rows, "assets": by_asset}


def exposure(*, user, account=None) -> dict[str, Any]:
    """Value per asset (cash included) and its share of equity, largest first."""
    rows = []
    equity = 0.0
    for _, snap in _latest_account_snapshots(user=user, account=account):
        equity += float(snap.equity)
        rows.extend({"asset": a, "value": v["value"]} for a, v in snap.assets.items())
    return {"currency": _currency(user), "equity": equity, "assets": analytics.exposure(rows, equity)}


def equity_curve(*, user, account=None, span: Range = Range()) -> dict[str, Any]:
    ts, eq = equity_arrays(user=user, account=account, span=span)
    f_ts, f_amount = flow_arrays(user=user, account=account)
    index = analytics.performance_index(ts, eq, f_ts, f_amount)
    return {
        "currency": _currency(user),
        "timestamps": [_iso(int(t)) for t in ts],
        "equity": eq.tolist(),
        "index": index.tolist(),
    }


def drawdown_curve(*, user, account=None, span: Range = Range()) -> dict[str, Any]:
    ts, eq = equity_arrays(user=user, account=account, span=span)
    f_ts, f_amount = flow_arrays(user=user, account=account)
    dd = analytics.drawdown(analytics.performance_index(ts, eq, f_ts, f_amount))
    return {
        "timestamps": [_iso(int(t)) for t in ts],
        "drawdown": dd.tolist(),
        "max_drawdown": float(dd.min()) if len(dd) else None,
    }


def daily_pnl(*, user, account=None, span: Range = Range()) -> dict[str, Any]:
    """P&L per UTC day in the range, flows kept apart (the day before the range gives the first close)."""
    ts, eq = equity_arrays(user=user, account=account, span=span)
    f_ts, f_amount = flow_arrays(user=user, account=account, span=span)
    if span.start is not None:
        before = (
            _snapshots(user=user, account=account).filter(timestamp__lt=span.start).order_by("-timestamp")
        )
        prev = before.values_list("timestamp", "equity").first()
        if prev is not None:
            ts = np.concatenate(([_ms(prev[0])], ts))
            eq = np.concatenate(([float(prev[1])], eq))
    d = analytics.daily_pnl(ts, eq, f_ts, f_amount)
    keep = (
        d["day"] >= (_ms(span.start) - _ms(span.start) % DAY_MS)
        if span.start
        else np.ones(len(d["day"]), bool)
    )
    rows = [
        {"day": _day(int(day)), "close": close, "flows": flows, "pnl": pnl}
        for day, close, flows, pnl, k in zip(d["day"], d["close"], d["flows"], d["pnl"], keep, strict=True)
        if k
    ]
    return {"currency": _currency(user), "days": rows, "total": float(sum(r["pnl"] for r in rows))}


def monthly_pnl(*, user, account=None, span: Range = Range()) -> dict[str, Any]:
    days = daily_pnl(user=user, account=account, span=span)["days"]
    day_ms = np.asarray(
        [_ms(datetime.fromisoformat(r["day"]).replace(tzinfo=UTC)) for r in days], dtype=np.int64
    )
    m = analytics.monthly_pnl(day_ms, np.asarray([r["pnl"] for r in days], dtype=np.float64))
    return {
        "currency": _currency(user),
        "months": [
            {"month": str(month), "pnl": float(p)} for month, p in zip(m["month"], m["pnl"], strict=True)
        ],
    }


def _benchmark(*, user, span: Range) -> tuple[np.ndarray, np.ndarray]:
    """Stored BTC/USDT daily closes on the user's exchange (empty when none are stored)."""
    try:
        c = candles(
            exchange=user.default_exchange or "binance",
            symbol=BENCHMARK_SYMBOL,
            timeframe="1d",
            start=span.start - timedelta(days=2) if span.start else None,
            end=span.end,
        )
    except DomainError:
        return analytics.EMPTY_I8, analytics.EMPTY_F8
    # A daily candle's close is the price at its end: stamp it there.
    return c.timestamp + DAY_MS - 1, c.close


def performance(*, user, account=None, span: Range = Range()) -> dict[str, Any]:
    ts, eq = equity_arrays(user=user, account=account, span=span)
    f_ts, f_amount = flow_arrays(user=user, account=account)
    b_ts, b_close = _benchmark(user=user, span=span) if len(ts) else (analytics.EMPTY_I8, analytics.EMPTY_F8)
    metrics = analytics.performance_metrics(ts, eq, f_ts, f_amount, bench_ts=b_ts, bench_close=b_close)
    return {"currency": _currency(user), "benchmark": BENCHMARK_SYMBOL, "metrics": metrics}


def positions(*, user, account=None) -> list:
    """The user's open positions (from the orders app's ledger)."""
    Position = apps.get_model("orders", "Position")
    return list(Position.objects.filter(owner=user, size__gt=0, **_fk(account)).order_by("symbol", "id"))


def cash_flow_list(*, user, account=None, span: Range = Range()) -> QuerySet[CashFlow]:
    return span.filter(CashFlow.objects.filter(owner=user, **_fk(account)))


# ------------------------------------------------------------------ trades from fills
def _fill_rows(*, user) -> list[dict[str, Any]]:
    Fill = apps.get_model("orders", "Fill")
    rows = (
        Fill.objects.filter(order__owner=user)
        .order_by("timestamp", "id")
        .values_list(
            "timestamp",
            "paper_account_id",
            "connection_id",
            "order__symbol",
            "order__side",
            "price",
            "amount",
            "fee",
            "fee_asset",
            "order__bot_id",
            "order__bot__strategy",
        )
    )
    out = []
    for ts, paper, live, symbol, side, price, amount, fee, fee_asset, bot, strategy in rows.iterator(
        chunk_size=5000
    ):
        base, _, rest = symbol.partition("/")
        quote = rest.split(":", 1)[0]
        fee_quote = (
            fee if fee_asset == quote or not fee_asset else (fee * price if fee_asset == base else ZERO)
        )
        out.append(
            {
                "ts": _ms(ts),
                "account": f"paper:{paper}" if paper else f"live:{live}",
                "symbol": symbol,
                "side": side,
                "price": float(price),
                "amount": float(amount),
                "fee": float(fee_quote),
                "bot": bot,
                "strategy": strategy or ("manual" if bot is None else ""),
            }
        )
    return out


def trade_list(*, user, account=None, span: Range = Range()) -> list[dict[str, Any]]:
    """Round trips of the user's fills (see ``analytics.round_trips``), filtered by exit time.

    Rebuilding 10,000 trades takes a few hundred ms, so the result is cached under
    a key that changes with every new fill (count and newest id).
    """
    Fill = apps.get_model("orders", "Fill")
    mark = Fill.objects.filter(order__owner=user).aggregate(n=Count("id"), last=Max("id"))
    key = f"portfolio:trades:{user.pk}:{mark['n']}:{mark['last']}"
    trades = cache.get(key)
    if trades is None:
        trades = analytics.round_trips(_fill_rows(user=user))
        cache.set(key, trades, TRADES_CACHE_SECONDS)
    wanted = account_key(account) if account is not None else None
    start = _ms(span.start) if span.start else None
    end = _ms(span.end) if span.end else None
    return [
        t
        for t in trades
        if (wanted is None or t["account"] == wanted)
        and (start is None or t["exit_ms"] >= start)
        and (end is None or t["exit_ms"] < end)
    ]


def trading_metrics(*, user, account=None, span: Range = Range()) -> dict[str, Any]:
    return {"metrics": analytics.trading_metrics(trade_list(user=user, account=account, span=span))}


def trade_distribution(*, user, account=None, span: Range = Range(), bins: int = 20) -> dict[str, Any]:
    return analytics.trade_histogram(trade_list(user=user, account=account, span=span), bins=bins)


def comparison(*, user, by: str, account=None, span: Range = Range()) -> dict[str, Any]:
    """Trading metrics per bot (with its name) or per strategy."""
    trades = trade_list(user=user, account=account, span=span)
    rows = analytics.compare_trades(trades, by)
    if by == "bot":
        Bot = apps.get_model("bots", "Bot")
        names = dict(
            Bot.objects.filter(owner=user, pk__in=[r["key"] for r in rows if r["key"]]).values_list(
                "pk", "name"
            )
        )
        for row in rows:
            row["name"] = names.get(
                row["key"], "Manual orders" if row["key"] is None else f"bot {row['key']}"
            )
    else:
        for row in rows:
            row["name"] = row["key"]
    return {"by": by, "rows": rows}


def monthly_strategy(*, user, account=None, span: Range = Range()) -> dict[str, Any]:
    return {"rows": analytics.monthly_by_strategy(trade_list(user=user, account=account, span=span))}


def portfolio_page(*, user, days: int = 365) -> dict[str, Any]:
    """Everything the portfolio page shows: summary cards, curves, P&L, exposure and metrics."""
    summary = portfolio_summary(user=user)
    if summary["as_of"] is None:
        return {"summary": summary, "has_history": False, "has_accounts": bool(summary["accounts"])}
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    span = Range(today - timedelta(days=days - 1), None)
    return {
        "summary": summary,
        "has_history": True,
        "has_accounts": True,
        "charts": {
            "equity": equity_curve(user=user, span=span),
            "drawdown": drawdown_curve(user=user, span=span),
            "daily": daily_pnl(user=user, span=Range(today - timedelta(days=89), None)),
            "monthly": monthly_pnl(user=user, span=span),
            "exposure": exposure(user=user),
        },
        "performance": performance(user=user, span=span)["metrics"],
        "trading": analytics.trading_metrics(trade_list(user=user, span=span)),
        "positions": positions(user=user),
    }
