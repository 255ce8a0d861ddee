"""What a manual paper market order costs the database (the API's POST to its fill and position).

The bound is what the request needs today (order, paper order and trade, balances, fill,
position, risk bookkeeping, the answer) with a little room; it does not grow with the
account's history (the fills are matched by the order's own trades, not every trade of
the market). Measured on PostgreSQL with Redis (the cache holds the warm ticker); the
transaction statements (savepoints) count too.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from apps.core.api import response_cache
from apps.orders.models import Order
from tests.exchanges.conftest import btc_1h  # noqa: F401 - real BTC/USDT 1h candles
from tests.orders.conftest import candles_stored  # noqa: F401
from tests.orders.test_api_trading import LIST, account, market  # noqa: F401 - the priced paper account

MAX_QUERIES = 55


def market_order(auth_client, account, *, named: bool = True):  # noqa: F811
    body = {
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "market",
        "amount": "0.01",
    }
    if named:  # else the user's own paper account, found without a transaction of its own
        body["paper_account"] = account.pk
    response = auth_client.post(LIST, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "filled"
    return response.json()


@pytest.mark.django_db(transaction=True)
def test_a_paper_market_order_stays_under_its_query_budget_whatever_the_history(
    auth_client,
    account,  # noqa: F811
    market,  # noqa: F811
    django_assert_max_num_queries,
):
    for _ in range(5):  # history: earlier fills, a position, the warm caches of a busy account
        market_order(auth_client, account)
    with django_assert_max_num_queries(MAX_QUERIES):
        order = market_order(auth_client, account)
    assert [Decimal(f["amount"]) for f in order["fills"]] == [Decimal("0.01")]


#: What a paper market order issues once nothing is read twice (the kill switch once; the
#: account, a balance row and the owner's time zone not read again; the answer built on the
#: order as its sending recorded it; the last closed candle's volume, the user's notification
#: channels and the legs of an order placed without any not read at all; the order written,
#: sent and filled in one transaction, so neither it nor its fills are read back; BEGIN/COMMIT
#: count; the fee of an order with one fill is that fill's as stored, not summed by a query; both
#: balance rows locked by one query; the market's catalog row kept while the catalog is unchanged;
#: no savepoint around the risk bookkeeping of a fill; the balances not read before the account's
#: lock, where the reservation is the check; the paper exchange's retry lookup skipped for a client
#: id generated in the same transaction; a market order's reservation written with its settlement,
#: and its paper order inserted with its fill, not inserted and then updated; today's risk state
#: moved by one UPDATE, not read first; no savepoint of the paper exchange's own inside the
#: placement's transaction).
#: Pinned, not a budget with room: a query that comes back fails here.
PINNED_QUERIES = 17
#: SQLite keeps an amount as a float (apps/core/money.py), so the paper exchange's trades are
#: read back rather than taken as it made them, the fees are summed by the database, and today's
#: risk state is read and added to in Python (not added to by the database, in floats).
SQLITE_EXTRA = 3
#: Without table versions (no Redis: the response cache is off) the catalog row is read each time.
UNVERSIONED_EXTRA = 1


@pytest.mark.parametrize("named", [True, False], ids=["account named", "the user's paper account"])
@pytest.mark.django_db(transaction=True)
def test_a_paper_market_order_reads_nothing_twice(
    auth_client,
    account,  # noqa: F811
    market,  # noqa: F811
    django_assert_max_num_queries,
    named,
):
    for _ in range(2):  # the warm caches: stored timeframe, risk rules, volume, channels, catalog row
        market_order(auth_client, account, named=named)  # (a table's first version is started, not kept)
    pinned = (
        PINNED_QUERIES
        + (SQLITE_EXTRA if connection.vendor == "sqlite" else 0)
        + (0 if response_cache.enabled() else UNVERSIONED_EXTRA)
    )
    with django_assert_max_num_queries(pinned):
        answer = market_order(auth_client, account, named=named)
    stored = Order.objects.get(pk=answer["id"])
    assert stored.fee == stored.fills.aggregate(fee=Sum("fee"))["fee"] > 0  # what the database sums
    assert Decimal(answer["fee"]) == stored.fee
