"""The one interface through which the platform talks to an exchange, and its typed results.

Sides, types, statuses and time in force are ``apps.orders.enums`` values (the
ccxt gateway translates ccxt's strings); amounts and prices are ``Decimal`` (converted from the exchange's decimal
strings, never via float arithmetic); timestamps are integer milliseconds UTC.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from apps.orders.enums import OPEN_STATUSES, TimeInForce


def to_decimal(value: Any) -> Decimal | None:
    """Exchange number (str/int/float/None) -> Decimal; floats via their shortest repr."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class _Result:
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (Decimals as strings, so no precision is lost on the wire)."""
        return _jsonable(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class MarketInfo(_Result):
    symbol: str
    base: str
    quote: str
    type: str = "spot"
    active: bool = True
    amount_step: Decimal | None = None  # precision as a step, e.g. 0.00001
    price_step: Decimal | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    min_cost: Decimal | None = None
    maker_fee: Decimal | None = None
    taker_fee: Decimal | None = None
    exchange_symbol: str = ""  # the exchange's own id, e.g. BTCUSDT


@dataclass(frozen=True)
class Balance(_Result):
    asset: str
    free: Decimal
    used: Decimal
    total: Decimal


@dataclass(frozen=True)
class AccountBalance(_Result):
    balances: dict[str, Balance]
    timestamp: int | None = None

    def get(self, asset: str) -> Balance:
        zero = Decimal("0")
        return self.balances.get(asset, Balance(asset, zero, zero, zero))


@dataclass(frozen=True)
class Ticker(_Result):
    symbol: str
    last: Decimal | None
    bid: Decimal | None = None
    ask: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    base_volume: Decimal | None = None
    timestamp: int | None = None
    open: Decimal | None = None  # 24h statistics, where the exchange reports them
    change: Decimal | None = None
    percentage: Decimal | None = None
    quote_volume: Decimal | None = None


@dataclass(frozen=True)
class OrderBook(_Result):
    symbol: str
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]
    timestamp: int | None = None


@dataclass(frozen=True)
class OHLCV(_Result):
    timestamp: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class OrderRequest(_Result):
    """What to place. ``client_order_id`` makes the submission idempotent: the same id
    is never placed twice (set one to retry safely; the gateway generates one otherwise)."""

    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str | None = None
    time_in_force: str = TimeInForce.GTC
    trailing_percent: Decimal | None = None
    reduce_only: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    # The caller generated ``client_order_id`` as it wrote its own order, in the transaction this
    # call runs in: no order can be under it yet, so a gateway sharing that database (the paper
    # exchange) need not look for a retried one. Other gateways ignore it.
    new_client_id: bool = False
    # The call runs inside the caller's transaction, which an ``InsufficientFunds`` rolls back
    # whole (the only refusal a spot order meets once the account is locked): a gateway sharing
    # that database (the paper exchange) writes in it with no savepoint of its own (two statements
    # less per order). Other gateways ignore it.
    in_caller_transaction: bool = False


@dataclass(frozen=True)
class Order(_Result):
    id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    status: str  # an OrderStatus
    amount: Decimal
    filled: Decimal
    remaining: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    average: Decimal | None = None
    cost: Decimal = Decimal("0")
    fee: Decimal | None = None
    fee_asset: str | None = None
    timestamp: int | None = None
    reason: str = ""
    time_in_force: str = TimeInForce.GTC

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class Trade(_Result):
    id: str
    order_id: str | None
    symbol: str
    side: str
    price: Decimal
    amount: Decimal
    cost: Decimal
    fee: Decimal | None
    fee_asset: str | None
    maker: bool | None
    timestamp: int | None


@dataclass(frozen=True)
class Position(_Result):
    symbol: str
    side: str  # long | short
    contracts: Decimal
    entry_price: Decimal | None
    mark_price: Decimal | None
    unrealized_pnl: Decimal | None
    leverage: Decimal | None
    liquidation_price: Decimal | None
    margin_mode: str | None


@dataclass(frozen=True)
class ConnectionCheck(_Result):
    """Outcome of ``check_connection``: the key works, and what it is allowed to do."""

    ok: bool
    spot: bool = False
    futures: bool = False
    read_only: bool = False
    withdraw: bool = False
    message: str = ""


class ExchangeGateway(abc.ABC):
    """Everything the platform does on an exchange. Raises ``gateway.errors`` only."""

    name: str = ""

    @abc.abstractmethod
    def load_markets(self, *, reload: bool = False) -> dict[str, MarketInfo]: ...

    def market(self, symbol: str) -> MarketInfo:
        from apps.exchanges.gateway.errors import InvalidOrder

        markets = self.load_markets()
        try:
            return markets[symbol]
        except KeyError:
            raise InvalidOrder(
                f"Unknown market {symbol!r} on {self.name}.", fields={"symbol": "unknown"}
            ) from None

    @abc.abstractmethod
    def fetch_balance(self) -> AccountBalance: ...

    @abc.abstractmethod
    def fetch_ticker(self, symbol: str) -> Ticker: ...

    @abc.abstractmethod
    def fetch_order_book(self, symbol: str, limit: int | None = None) -> OrderBook: ...

    @abc.abstractmethod
    def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[OHLCV]: ...

    @abc.abstractmethod
    def create_order(self, request: OrderRequest) -> Order: ...

    @abc.abstractmethod
    def cancel_order(self, order_id: str, symbol: str) -> Order: ...

    @abc.abstractmethod
    def fetch_order(self, order_id: str, symbol: str) -> Order: ...

    @abc.abstractmethod
    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]: ...

    @abc.abstractmethod
    def fetch_my_trades(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[Trade]: ...

    def fetch_positions(self, symbols: list[str] | None = None) -> list[Position]:
        """Open futures positions (spot accounts have none)."""
        return []

    def set_leverage(self, symbol: str, leverage: Decimal) -> Decimal:
        """Set a futures symbol's leverage; returns the leverage in force. Refused by spot-only gateways."""
        from apps.exchanges.gateway.errors import InvalidOrder

        raise InvalidOrder(f"{self.name} does not trade futures.", fields={"leverage": "futures only"})

    def set_margin_mode(self, symbol: str, mode: str) -> str:
        """Set a futures symbol's margin mode (``isolated`` or ``cross``); returns it."""
        from apps.exchanges.gateway.errors import InvalidOrder

        raise InvalidOrder(f"{self.name} does not trade futures.", fields={"margin_mode": "futures only"})

    #: Whether ``create_oco`` places a native one-cancels-the-other pair. Where it is
    #: False the platform emulates OCO (``apps.orders.services``: held legs).
    supports_oco: bool = False

    def create_oco(self, first: OrderRequest, second: OrderRequest) -> list[Order]:
        """Place two linked orders on one symbol: a fill of either cancels the other, atomically.

        Typically a take-profit limit and a stop on the same side and amount.
        Only gateways with ``supports_oco`` implement it.
        """
        from apps.exchanges.gateway.errors import InvalidOrder

        raise InvalidOrder(f"{self.name} has no native OCO orders.", fields={"type": "oco not supported"})

    @abc.abstractmethod
    def check_connection(self) -> ConnectionCheck: ...
