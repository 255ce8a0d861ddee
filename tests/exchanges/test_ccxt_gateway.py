"""The ccxt gateway against ccxt's real Binance client talking to a local fake Binance.

The fake answers from ccxt's recorded Binance responses plus the private
endpoints in ``fake_binance_account``; only the exchange is stood in for.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.exchanges.gateway import (
    AuthenticationFailed,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    OrderRequest,
    RateLimited,
)
from apps.exchanges.gateway.ccxt_gateway import CcxtGateway
from tests.exchanges.fake_binance_account import API_KEY, SECRET, BinanceAccount
from tests.support.fake_exchange import FakeBinance


@pytest.fixture
def fake():
    with FakeBinance() as server:
        yield server


@pytest.fixture
def account(fake):
    return BinanceAccount(fake).install()


def make_gateway(fake, *, api_key=API_KEY, secret=SECRET, retries=2, timeout_ms=5_000) -> CcxtGateway:
    gateway = CcxtGateway(
        "binance",
        api_key=api_key,
        secret=secret,
        retries=retries,
        timeout_ms=timeout_ms,
        sleep=lambda s: None,
    )
    fake.attach(gateway.client)
    return gateway


@pytest.fixture
def gateway(fake, account):
    return make_gateway(fake)


def buy(amount="0.01", price="30000", **kw) -> OrderRequest:
    return OrderRequest(
        symbol="BTC/USDT", side="buy", type="limit", amount=Decimal(amount), price=Decimal(price), **kw
    )


def test_balance_is_parsed_into_decimals(gateway):
    balances = gateway.fetch_balance()
    btc = balances.get("BTC")
    assert btc.free == Decimal("0.5") and btc.used == Decimal("0.1") and btc.total == Decimal("0.6")
    assert balances.get("USDT").free == Decimal("10000.12345678")
    assert "ETH" not in balances.balances  # empty assets are left out


def test_recorded_balance_response_parses(fake, account):
    fake.route_recorded("fetchBalance", "Spot balance", path="/api/v3/account")
    # route_recorded bypasses the key check: still signed by ccxt, answered with the recording
    balances = make_gateway(fake).fetch_balance()
    assert balances.get("LTC").free == Decimal("0.919741")
    assert balances.get("ETH").free == Decimal("0.02229833")


def test_create_and_cancel_a_limit_order(gateway, account, fake):
    order = gateway.create_order(buy(client_order_id="bot1-0001"))
    assert order.status == "open" and order.client_order_id == "bot1-0001"
    assert order.amount == Decimal("0.01") and order.price == Decimal("30000")
    posted = fake.requests_to("/api/v3/order")[0]
    assert posted.params["newClientOrderId"] == "bot1-0001"
    assert posted.params["type"] == "LIMIT" and posted.params["quantity"] == "0.01"
    cancelled = gateway.cancel_order(order.id, "BTC/USDT")
    assert cancelled.status == "cancelled"
    with pytest.raises(OrderNotFound):
        gateway.cancel_order(order.id, "BTC/USDT")
    with pytest.raises(OrderNotFound):
        gateway.fetch_order("123", "BTC/USDT")


def test_every_order_gets_a_client_order_id(gateway, account):
    order = gateway.create_order(buy())
    assert order.client_order_id and order.client_order_id in account.orders


def test_amount_and_price_are_rounded_to_the_market_precision(gateway, fake):
    order = gateway.create_order(buy(amount="0.0123456", price="30000.129"))
    posted = fake.requests_to("/api/v3/order")[0].params
    assert posted["quantity"] == "0.01234"  # step 0.00001, truncated
    assert posted["price"] == "30000.13"  # tick 0.01
    assert order.amount == Decimal("0.01234")


def test_limits_are_checked_before_anything_is_sent(gateway, fake):
    with pytest.raises(InvalidOrder) as err:
        gateway.create_order(buy(amount="0.0001", price="100"))  # 0.01 USDT < 5 USDT minimum notional
    assert "minimum" in err.value.message
    with pytest.raises(InvalidOrder):
        gateway.create_order(buy(amount="0.000001"))  # below the 0.00001 step: rounds to zero
    with pytest.raises(InvalidOrder):
        gateway.create_order(OrderRequest("BTC/USDT", "buy", "limit", Decimal("0.01")))  # no price
    with pytest.raises(InvalidOrder):
        gateway.create_order(OrderRequest("NOPE/USDT", "buy", "market", Decimal("1")))
    assert fake.requests_to("/api/v3/order") == []


def test_a_lost_create_answer_is_recovered_without_a_second_order(gateway, account, fake):
    account.lose_next_create_answer = True
    order = gateway.create_order(buy(client_order_id="bot1-lost"))
    assert order.client_order_id == "bot1-lost" and order.status == "open"
    assert len(account.orders) == 1
    assert len(fake.requests_to("/api/v3/order")) == 2  # the POST and the lookup by client id
    assert [r.method for r in fake.requests_to("/api/v3/order")] == ["POST", "GET"]


def test_a_resent_create_refused_as_duplicate_returns_the_first_order(gateway, account, fake):
    account.lose_next_create_answer = True
    fake.fail("GET", "/api/v3/order", drop=True, times=3)  # every lookup lost: the gateway re-sends
    order = gateway.create_order(buy(client_order_id="bot1-dup"))
    assert order.client_order_id == "bot1-dup"
    assert len(account.orders) == 1
    posts = [r for r in fake.requests_to("/api/v3/order") if r.method == "POST"]
    assert len(posts) == 2 and {p.params["newClientOrderId"] for p in posts} == {"bot1-dup"}


def test_a_request_lost_before_the_exchange_is_sent_again(gateway, account, fake):
    fake.fail("POST", "/api/v3/order", drop=True)
    order = gateway.create_order(buy(client_order_id="bot1-retry"))
    assert order.status == "open" and len(account.orders) == 1


def test_authentication_error_is_mapped_and_never_shows_the_secret(fake, account):
    bad_secret = "S3cr3t-" + "x" * 50
    gateway = make_gateway(fake, api_key="WRONGKEY1234567890abcdefghijkl", secret=bad_secret)
    with pytest.raises(AuthenticationFailed) as err:
        gateway.fetch_balance()
    text = str(err.value) + repr(err.value) + repr(gateway)
    assert bad_secret not in text and "WRONGKEY1234567890abcdefghijkl" not in text
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_insufficient_funds_is_mapped(gateway, account):
    account.insufficient = True
    with pytest.raises(InsufficientFunds):
        gateway.create_order(buy())


def test_rate_limit_is_mapped_and_not_retried(gateway, fake):
    fake.fail("GET", "/api/v3/account", status=429, times=5)
    with pytest.raises(RateLimited):
        gateway.fetch_balance()
    assert len(fake.requests_to("/api/v3/account")) == 1


def test_network_errors_are_retried_with_backoff_then_mapped(fake, account):
    sleeps: list[float] = []
    gateway = make_gateway(fake, retries=3)
    gateway._sleep = sleeps.append
    fake.fail("GET", "/api/v3/account", drop=True, times=2)
    assert gateway.fetch_balance().get("BTC").free == Decimal("0.5")
    assert sleeps == [0.5, 1.0]
    fake.fail("GET", "/api/v3/account", status=503, times=10)
    with pytest.raises(ExchangeUnavailable):
        gateway.fetch_balance()


def test_a_slow_exchange_times_out_as_unavailable(fake, account):
    gateway = make_gateway(fake, retries=0, timeout_ms=300)
    fake.fail("GET", "/api/v3/account", status=200, body={}, delay=1.5)
    with pytest.raises(ExchangeUnavailable):
        gateway.fetch_balance()


def test_check_connection_reports_permissions_including_withdraw(gateway, account):
    check = gateway.check_connection()
    assert check.ok and check.spot and not check.withdraw and not check.read_only
    account.restrictions["enableWithdrawals"] = True
    check = gateway.check_connection()
    assert check.withdraw and "withdraw" in check.message.lower()


def test_public_reads_use_the_recorded_responses(gateway):
    ticker = gateway.fetch_ticker("BTC/USDT")
    assert ticker.last is not None and isinstance(ticker.last, Decimal)
    book = gateway.fetch_order_book("BTC/USDT", 5)
    assert book.bids and isinstance(book.bids[0][0], Decimal)
    markets = gateway.load_markets()
    assert markets["BTC/USDT"].amount_step == Decimal("0.00001")
    assert markets["BTC/USDT"].min_cost == Decimal("5")


@pytest.mark.parametrize(
    ("tif", "sent_type", "sent_tif"),
    [("IOC", "LIMIT", "IOC"), ("FOK", "LIMIT", "FOK"), ("PO", "LIMIT_MAKER", None)],
)
def test_time_in_force_reaches_the_exchange_and_reads_back(gateway, account, fake, tif, sent_type, sent_tif):
    order = gateway.create_order(buy(client_order_id=f"tif-{tif}", time_in_force=tif))
    posted = fake.requests_to("/api/v3/order")[0]
    assert posted.params["type"] == sent_type and posted.params.get("timeInForce") == sent_tif
    assert order.time_in_force == tif and order.status == "open"


def test_an_order_type_outside_the_vocabulary_is_refused_before_sending(gateway, fake):
    with pytest.raises(InvalidOrder) as exc:
        gateway.create_order(
            OrderRequest("BTC/USDT", "buy", "stop", Decimal("0.01"), stop_price=Decimal("1"))
        )
    assert exc.value.fields == {"type": "unsupported"}
    assert not fake.requests_to("/api/v3/order")


def test_recorded_order_responses_parse_into_typed_orders(fake):
    """ccxt's recorded Binance answers for createOrder and fetchOrder, through the real parser."""
    fake.route_recorded("createOrder", http="POST", path="/api/v3/order")
    gateway = make_gateway(fake)
    request = OrderRequest("SOL/USDT", "buy", "limit", Decimal("0.05"), price=Decimal("241"))
    order = gateway.create_order(request)
    assert order.id == "9780331417" and order.status == "open" and order.type == "limit"
    assert order.amount == Decimal("0.05") and order.price == Decimal("241") and order.filled == 0
    fake.route_recorded("fetchOrder", path="/api/v3/order")
    done = gateway.fetch_order("3397148653", "LTC/USDT")
    assert done.status == "filled" and done.side == "sell" and done.type == "market"
    assert done.filled == Decimal("0.1") and done.cost == Decimal("9.08") and done.average == Decimal("90.8")
