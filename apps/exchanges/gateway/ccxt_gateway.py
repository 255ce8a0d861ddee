"""``ExchangeGateway`` over a ccxt client: real exchanges, with the safety a live account needs.

* ``timeout`` on every request and ccxt's own rate limiter (``enableRateLimit``).
* Retries with exponential backoff on *network* errors only (timeouts, dropped
  connections, 5xx maintenance). Exchange answers (bad key, insufficient funds,
  invalid order) are never retried: they are raised as domain errors at once.
  Rate-limit refusals (429/418) are not retried either, unless the gateway was
  built with ``retry_rate_limited=True`` (the keyless public-data instance that
  pages through candle downloads): then they wait as ``Retry-After`` says, or
  back off harder for a 418 IP ban.
* A keyless instance (no api_key) reads public data: the market catalog,
  OHLCV pages, tickers, order books and recent trades.
* ``MARKETDATA_API_OVERRIDES`` (``{"binance": "http://127.0.0.1:8123"}``) points
  an exchange at another host (a local fake in tests, a proxy in production):
  every client this module builds honours it.
* Every order carries a client order id. A create whose answer was lost is not
  blindly re-sent: the gateway first asks the exchange for the order by that id
  and returns it if it exists; a re-send the exchange refuses as a duplicate is
  resolved the same way. A retried create can therefore never place a second order.
* Amounts and prices are rounded with the market's precision and checked
  against its limits before anything is sent.
* Credentials never appear in an error or log: messages are scrubbed of the
  key/secret/passphrase, and ccxt's exceptions are not chained (``from None``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt
import numpy as np
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from apps.exchanges.crypto import mask
from apps.exchanges.gateway.base import (
    OHLCV,
    AccountBalance,
    Balance,
    ConnectionCheck,
    ExchangeGateway,
    MarketInfo,
    Order,
    OrderBook,
    OrderRequest,
    Position,
    Ticker,
    Trade,
    to_decimal,
)
from apps.exchanges.gateway.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    PermissionDenied,
    RateLimited,
    UnknownSymbol,
)
from apps.orders.enums import (
    PRICED_TYPES,
    TRIGGERED_TYPES,
    OrderSide,
    OrderType,
    TimeInForce,
    status_from_ccxt,
    time_in_force_from_ccxt,
    to_ccxt_order,
    type_from_ccxt,
)

logger = logging.getLogger(__name__)

# Checked in order: the first matching ccxt class decides the domain error.
ERROR_MAP: list[tuple[type[Exception], type[ExchangeError]]] = [
    (ccxt.PermissionDenied, PermissionDenied),
    (ccxt.AuthenticationError, AuthenticationFailed),
    (ccxt.AccountSuspended, AuthenticationFailed),
    (ccxt.InsufficientFunds, InsufficientFunds),
    (ccxt.OrderNotFound, OrderNotFound),
    (ccxt.InvalidOrder, InvalidOrder),
    (ccxt.BadSymbol, UnknownSymbol),
    (ccxt.BadRequest, InvalidOrder),
    (ccxt.RateLimitExceeded, RateLimited),
    (ccxt.DDoSProtection, RateLimited),
    (ccxt.NetworkError, ExchangeUnavailable),
    (ccxt.ExchangeNotAvailable, ExchangeUnavailable),
]
# What a retry may help with: the request may not have reached the exchange.
RETRYABLE = (ccxt.NetworkError,)
NOT_RETRYABLE = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)
MAX_RATE_LIMIT_WAIT = 120.0  # seconds: the longest a rate-limited call waits before its retry


def _d(value: Any) -> Decimal | None:
    return to_decimal(value)


def point_at(client: Any, base_url: str) -> None:
    """Rewrite every API URL of ``client`` to ``base_url``, keeping the paths.

    ``https://api.binance.com/api/v3`` becomes ``<base_url>/api/v3``; hosts
    differ per API family but paths do not collide, so one server can answer all.
    """
    base = base_url.rstrip("/")

    def rewrite(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("http"):
            return base + urlsplit(value).path
        if isinstance(value, dict):
            return {key: rewrite(item) for key, item in value.items()}
        return value

    client.urls["api"] = rewrite(client.urls["api"])


def describe_network_error(exchange: str, exc: Exception) -> str:
    """A message for a failed connection that says what probably happened and what to do."""
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return f"{exchange} is rate-limiting us ({type(exc).__name__}); try again shortly."
    if isinstance(exc, ccxt.RequestTimeout):
        return f"{exchange} did not answer in time; the exchange or your connection may be down."
    text = str(exc)
    advice = "Check the internet connection, or set MARKETDATA_ONLINE=false to work from stored candles."
    if any(
        hint in text for hint in ("Name or service not known", "Temporary failure", "nodename", "getaddrinfo")
    ):
        return f"Cannot reach {exchange}: you appear to be offline (DNS lookup failed). {advice}"
    return f"Cannot reach {exchange} ({type(exc).__name__}: {text[:160]}). {advice}"


class CcxtGateway(ExchangeGateway):
    @sensitive_variables("api_key", "secret", "passphrase", "config")
    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str = "",
        secret: str = "",
        passphrase: str | None = None,
        testnet: bool = False,
        timeout_ms: int = 30_000,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        retry_rate_limited: bool = False,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = exchange_id
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.retry_rate_limited = retry_rate_limited
        self.retried = 0  # retries so far (downloads report it)
        self._sleep = sleep
        self._secrets = [s for s in (secret, passphrase, api_key) if s]
        self._masked_key = mask(api_key)
        if client is None:
            try:
                klass = getattr(ccxt, exchange_id)
            except AttributeError:
                raise InvalidOrder(
                    f"ccxt has no exchange {exchange_id!r}.", fields={"exchange": "unknown"}
                ) from None
            config: dict[str, Any] = {
                "apiKey": api_key,
                "secret": secret,
                "timeout": timeout_ms,
                "enableRateLimit": True,
                # Currencies and margin pairs cost extra private calls per load; markets are all we use.
                "options": {"fetchCurrencies": False, "fetchMargins": False},
            }
            if passphrase:
                config["password"] = passphrase
            client = klass(config)
            if testnet:
                client.set_sandbox_mode(True)
            override = getattr(settings, "MARKETDATA_API_OVERRIDES", {}).get(exchange_id)
            if override:
                point_at(client, override)
        self.client = client

    def __repr__(self) -> str:
        return f"<CcxtGateway {self.name} key={self._masked_key}>"

    # ------------------------------------------------------------- plumbing
    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret and secret in text:
                text = text.replace(secret, mask(secret))
        return text

    def _map(self, exc: Exception, *, attempts: int = 1) -> ExchangeError:
        if isinstance(exc, ccxt.NetworkError):
            text = describe_network_error(self.name, exc)
            if attempts > 1:
                text += f" Gave up after {attempts} attempts."
        else:
            text = f"{self.name}: {type(exc).__name__}: {exc}"
        message = self._scrub(text)[:500]
        for ccxt_class, domain in ERROR_MAP:
            if isinstance(exc, ccxt_class):
                return domain(message)
        return ExchangeError(message)

    def _rate_limit_wait(self, exc: Exception, attempt: int) -> float:
        wait = self.backoff_seconds * (2**attempt)
        if isinstance(exc, ccxt.DDoSProtection):
            # 418 means an IP ban for hammering on after 429s: wait longer.
            retry_after = (getattr(self.client, "last_response_headers", None) or {}).get("Retry-After")
            if retry_after:
                wait = max(wait, float(retry_after))
            elif " 418 " in str(exc):
                wait *= 4
        return min(wait, MAX_RATE_LIMIT_WAIT)

    def _call(self, fn: Callable[..., Any], *args: Any, retry: bool = True, **kwargs: Any) -> Any:
        """One ccxt call with network-error retries (exponential backoff); domain errors out."""
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            try:
                return fn(*args, **kwargs)
            except NOT_RETRYABLE as exc:
                if not self.retry_rate_limited or attempt + 1 >= attempts:
                    raise self._map(exc, attempts=attempt + 1) from None
                delay = self._rate_limit_wait(exc, attempt)
                logger.warning(
                    "%s %s rate-limited (%s), retry %d/%d in %.1fs",
                    self.name, getattr(fn, "__name__", "call"), type(exc).__name__, attempt + 1,
                    attempts - 1, delay,
                )  # fmt: skip
                self.retried += 1
                self._sleep(delay)
            except RETRYABLE as exc:
                if attempt + 1 >= attempts:
                    raise self._map(exc, attempts=attempt + 1) from None
                delay = self.backoff_seconds * (2**attempt)
                logger.warning(
                    "%s %s failed (%s), retry %d/%d in %.1fs (key %s)",
                    self.name, getattr(fn, "__name__", "call"), type(exc).__name__, attempt + 1,
                    attempts - 1, delay, self._masked_key,
                )  # fmt: skip
                self.retried += 1
                self._sleep(delay)
            except ccxt.BaseError as exc:
                raise self._map(exc) from None
        raise AssertionError("unreachable")

    # -------------------------------------------------------------- markets
    def load_markets(self, *, reload: bool = False) -> dict[str, MarketInfo]:
        markets = self._call(self.client.load_markets, reload)
        return {symbol: self._market(m) for symbol, m in markets.items()}

    def _market(self, m: dict[str, Any]) -> MarketInfo:
        limits = m.get("limits") or {}
        precision = m.get("precision") or {}
        return MarketInfo(
            symbol=m["symbol"],
            base=m.get("base") or "",
            quote=m.get("quote") or "",
            type=m.get("type") or "spot",
            active=m.get("active") is not False,
            amount_step=self._step(precision.get("amount")),
            price_step=self._step(precision.get("price")),
            min_amount=_d((limits.get("amount") or {}).get("min")),
            max_amount=_d((limits.get("amount") or {}).get("max")),
            min_price=_d((limits.get("price") or {}).get("min")),
            max_price=_d((limits.get("price") or {}).get("max")),
            min_cost=_d((limits.get("cost") or {}).get("min")),
            maker_fee=_d(m.get("maker")),
            taker_fee=_d(m.get("taker")),
            exchange_symbol=m.get("id") or "",
        )

    def _step(self, value: Any) -> Decimal | None:
        if value is None:
            return None
        if self.client.precisionMode == ccxt.TICK_SIZE:
            return _d(value)
        return Decimal(1).scaleb(-int(value))  # DECIMAL_PLACES: 8 -> 1e-8

    # -------------------------------------------------------------- reads
    def fetch_balance(self) -> AccountBalance:
        raw = self._call(self.client.fetch_balance)
        balances = {}
        for asset, total in (raw.get("total") or {}).items():
            free = _d((raw.get("free") or {}).get(asset)) or Decimal(0)
            used = _d((raw.get("used") or {}).get(asset)) or Decimal(0)
            total_d = _d(total) or free + used
            if total_d or free or used:
                balances[asset] = Balance(asset, free, used, total_d)
        return AccountBalance(balances=balances, timestamp=raw.get("timestamp"))

    def fetch_ticker(self, symbol: str) -> Ticker:
        t = self._call(self.client.fetch_ticker, symbol)
        return Ticker(
            symbol=t["symbol"],
            last=_d(t.get("last")),
            bid=_d(t.get("bid")),
            ask=_d(t.get("ask")),
            high=_d(t.get("high")),
            low=_d(t.get("low")),
            base_volume=_d(t.get("baseVolume")),
            timestamp=t.get("timestamp"),
            open=_d(t.get("open")),
            change=_d(t.get("change")),
            percentage=_d(t.get("percentage")),
            quote_volume=_d(t.get("quoteVolume")),
        )

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> OrderBook:
        book = self._call(self.client.fetch_order_book, symbol, limit)
        return OrderBook(
            symbol=symbol,
            bids=[(_d(p), _d(a)) for p, a, *_ in book.get("bids", [])],
            asks=[(_d(p), _d(a)) for p, a, *_ in book.get("asks", [])],
            timestamp=book.get("timestamp"),
        )

    def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[OHLCV]:
        rows = self._call(self.client.fetch_ohlcv, symbol, timeframe, since, limit)
        return [OHLCV(int(r[0]), _d(r[1]), _d(r[2]), _d(r[3]), _d(r[4]), _d(r[5])) for r in rows]

    def fetch_ohlcv_array(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: int | None = None,
        limit: int | None = None,
        *,
        price: str | None = None,
    ) -> np.ndarray:
        """One OHLCV page as a float64 ``(n, 6)`` array (open time ms first), for the candle store.

        The store keeps candles as float64 (see ``marketdata.models.Candle``), so
        bulk downloads skip the per-value Decimals of ``fetch_ohlcv``. ``price``
        ``"mark"`` (or ``"index"``) asks a derivatives exchange for its mark-price
        candles instead of last-trade ones (ccxt's ``params={"price": ...}``).
        """
        params = {"price": price} if price else {}
        rows = self._call(self.client.fetch_ohlcv, symbol, timeframe, since, limit, params)
        if not rows:
            return np.empty((0, 6), dtype=np.float64)
        return np.asarray([r[:6] for r in rows], dtype=np.float64)

    def fetch_funding_rate_history(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[tuple[int, Decimal, Decimal | None]]:
        """One page of a perpetual market's past funding rates: ``(funding time ms, rate, mark price)``.

        Oldest first, as ccxt's ``fetch_funding_rate_history`` returns them; the
        rate is exact (Decimal from the exchange's string), the mark price is
        None when the exchange does not send it.
        """
        rows = self._call(self.client.fetch_funding_rate_history, symbol, since, limit)
        out = []
        for row in rows:
            info = row.get("info") or {}
            # The exchange's own string, exact; ccxt's parsed float only when there is none.
            rate = _d(info.get("fundingRate"))
            if rate is None:
                rate = _d(row.get("fundingRate"))
            if rate is None or row.get("timestamp") is None:
                continue
            out.append((int(row["timestamp"]), rate, _d(info.get("markPrice"))))
        return out

    def fetch_trades(self, symbol: str, limit: int | None = None) -> list[Trade]:
        """Recent public trades of the market (anyone's, not the account's: see ``fetch_my_trades``)."""
        rows = self._call(self.client.fetch_trades, symbol, None, limit)
        return [
            Trade(
                id=str(t.get("id")),
                order_id=None,
                symbol=t.get("symbol") or symbol,
                side=t.get("side") or "",
                price=_d(t["price"]),
                amount=_d(t["amount"]),
                cost=_d(t.get("cost")) or _d(t["price"]) * _d(t["amount"]),
                fee=None,
                fee_asset=None,
                maker=None,
                timestamp=t.get("timestamp"),
            )
            for t in rows
        ]

    def fetch_order(self, order_id: str, symbol: str) -> Order:
        return self._order(self._call(self.client.fetch_order, order_id, symbol))

    def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        """The order placed with ``client_order_id``, or None when the exchange has none."""
        try:
            raw = self._call(
                self.client.fetch_order,
                None,
                symbol,
                {"clientOrderId": client_order_id, "origClientOrderId": client_order_id},
            )
        except OrderNotFound:
            return None
        return self._order(raw)

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        return [self._order(o) for o in self._call(self.client.fetch_open_orders, symbol)]

    def fetch_my_trades(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[Trade]:
        rows = self._call(self.client.fetch_my_trades, symbol, since, limit)
        out = []
        for t in rows:
            fee = t.get("fee") or {}
            out.append(
                Trade(
                    id=str(t.get("id")),
                    order_id=None if t.get("order") is None else str(t["order"]),
                    symbol=t["symbol"],
                    side=t["side"],
                    price=_d(t["price"]),
                    amount=_d(t["amount"]),
                    cost=_d(t.get("cost")) or _d(t["price"]) * _d(t["amount"]),
                    fee=_d(fee.get("cost")),
                    fee_asset=fee.get("currency"),
                    maker=None if t.get("takerOrMaker") is None else t["takerOrMaker"] == "maker",
                    timestamp=t.get("timestamp"),
                )
            )
        return out

    def fetch_positions(self, symbols: list[str] | None = None) -> list[Position]:
        if not self.client.has.get("fetchPositions"):
            return []
        rows = self._call(self.client.fetch_positions, symbols)
        out = []
        for p in rows:
            contracts = _d(p.get("contracts")) or Decimal(0)
            if not contracts:
                continue
            out.append(
                Position(
                    symbol=p["symbol"],
                    side=p.get("side") or ("long" if contracts > 0 else "short"),
                    contracts=abs(contracts),
                    entry_price=_d(p.get("entryPrice")),
                    mark_price=_d(p.get("markPrice")),
                    unrealized_pnl=_d(p.get("unrealizedPnl")),
                    leverage=_d(p.get("leverage")),
                    liquidation_price=_d(p.get("liquidationPrice")),
                    margin_mode=p.get("marginMode"),
                )
            )
        return out

    def set_leverage(self, symbol: str, leverage: Decimal) -> Decimal:
        """ccxt's unified ``set_leverage`` (exchanges take whole numbers); refused where ccxt lacks it."""
        if not self.client.has.get("setLeverage"):
            return super().set_leverage(symbol, leverage)
        value = int(leverage)
        self._call(self.client.set_leverage, value, symbol, retry=False)
        return Decimal(value)

    def set_margin_mode(self, symbol: str, mode: str) -> str:
        """ccxt's unified ``set_margin_mode`` (``isolated``/``cross``); refused where ccxt lacks it."""
        if not self.client.has.get("setMarginMode"):
            return super().set_margin_mode(symbol, mode)
        self._call(self.client.set_margin_mode, mode, symbol, retry=False)
        return mode

    # -------------------------------------------------------------- orders
    def _prepare(self, request: OrderRequest) -> tuple[str, Decimal, Decimal | None, Decimal | None]:
        """Round to the market's precision and check its limits; raises InvalidOrder."""
        if request.side not in OrderSide.values:
            raise InvalidOrder("side must be buy or sell", fields={"side": "buy or sell"})
        if request.type not in OrderType.values:
            raise InvalidOrder(f"unsupported order type {request.type!r}", fields={"type": "unsupported"})
        if request.time_in_force not in TimeInForce.values:
            raise InvalidOrder(
                f"unsupported time in force {request.time_in_force!r}",
                fields={"time_in_force": "unsupported"},
            )
        if request.type == OrderType.TRAILING_STOP and not (request.trailing_percent or 0) > 0:
            raise InvalidOrder(
                "trailing_stop orders need a positive trailing_percent",
                fields={"trailing_percent": "required"},
            )
        market = self.market(request.symbol)
        if not market.active:
            raise InvalidOrder(f"{request.symbol} is not trading.", fields={"symbol": "inactive"})
        try:
            amount = Decimal(self.client.amount_to_precision(request.symbol, str(request.amount)))
        except ccxt.BaseError as exc:  # ccxt refuses amounts that round to zero
            raise InvalidOrder(self._scrub(str(exc))[:300], fields={"amount": "too small"}) from None
        price = request.price
        stop = request.stop_price
        if price is not None:
            price = Decimal(self.client.price_to_precision(request.symbol, str(price)))
        if stop is not None:
            stop = Decimal(self.client.price_to_precision(request.symbol, str(stop)))
        if request.type in PRICED_TYPES and not price:
            raise InvalidOrder(f"{request.type} orders need a price", fields={"price": "required"})
        if request.type in TRIGGERED_TYPES and not (stop or price):
            raise InvalidOrder(
                f"{request.type} orders need a trigger price", fields={"stop_price": "required"}
            )
        if amount <= 0:
            raise InvalidOrder(
                "amount rounds to zero at this market's precision", fields={"amount": "too small"}
            )
        if market.min_amount is not None and amount < market.min_amount:
            raise InvalidOrder(
                f"amount {amount} is below the minimum {market.min_amount} {market.base}",
                fields={"amount": f"minimum {market.min_amount}"},
            )
        if market.max_amount is not None and amount > market.max_amount:
            raise InvalidOrder(
                f"amount {amount} is above the maximum {market.max_amount} {market.base}",
                fields={"amount": f"maximum {market.max_amount}"},
            )
        reference = price or stop
        if reference is None and market.min_cost is not None:
            ticker = self.fetch_ticker(request.symbol)
            reference = ticker.last
        if market.min_cost is not None and reference is not None and amount * reference < market.min_cost:
            raise InvalidOrder(
                f"order value {amount * reference} is below the minimum {market.min_cost} {market.quote}",
                fields={"amount": f"minimum notional {market.min_cost}"},
            )
        return request.client_order_id or f"tp{uuid.uuid4().hex[:28]}", amount, price, stop

    def create_order(self, request: OrderRequest) -> Order:
        client_id, amount, price, stop = self._prepare(request)
        ccxt_type, price, order_params = to_ccxt_order(
            type=request.type,
            price=price,
            stop_price=stop,
            time_in_force=request.time_in_force,
            trailing_percent=request.trailing_percent,
        )
        params: dict[str, Any] = {**request.params, **order_params, "clientOrderId": client_id}
        if request.reduce_only:
            params["reduceOnly"] = True
        args = (
            request.symbol,
            ccxt_type,
            request.side,
            str(amount),
            None if price is None else str(price),
            params,
        )

        attempts = 1 + self.retries
        for attempt in range(attempts):
            try:
                return self._order(self.client.create_order(*args))
            except NOT_RETRYABLE as exc:
                raise self._map(exc) from None
            except RETRYABLE as exc:
                # The order may have reached the exchange before the answer was lost:
                # look it up by its client id before anything is sent again.
                logger.warning(
                    "%s create_order %s: %s; checking before retry (key %s)",
                    self.name, client_id, type(exc).__name__, self._masked_key,
                )  # fmt: skip
                if attempt + 1 >= attempts:
                    raise self._map(exc) from None
                self._sleep(self.backoff_seconds * (2**attempt))
                existing = self._find_after_error(client_id, request.symbol)
                if existing is not None:
                    return existing
            except ccxt.BaseError as exc:
                if attempt > 0 and "duplicate" in str(exc).lower():
                    existing = self._find_after_error(client_id, request.symbol)
                    if existing is not None:
                        return existing
                raise self._map(exc) from None
        raise AssertionError("unreachable")

    def _find_after_error(self, client_id: str, symbol: str) -> Order | None:
        try:
            return self.fetch_order_by_client_id(client_id, symbol)
        except ExchangeUnavailable:
            return None  # still unreachable: the next attempt re-checks before re-sending

    def cancel_order(self, order_id: str, symbol: str) -> Order:
        raw = self._call(self.client.cancel_order, order_id, symbol)
        return self._order(raw)

    def _order(self, o: dict[str, Any]) -> Order:
        amount = _d(o.get("amount")) or Decimal(0)
        filled = _d(o.get("filled")) or Decimal(0)
        remaining = _d(o.get("remaining"))
        fee = o.get("fee") or {}
        trigger = _d(o.get("triggerPrice") or o.get("stopPrice") or o.get("takeProfitPrice"))
        return Order(
            id=str(o.get("id")),
            client_order_id=o.get("clientOrderId"),
            symbol=o.get("symbol") or "",
            side=o.get("side") or "",
            type=type_from_ccxt(o),
            status=status_from_ccxt(o.get("status"), filled=filled),
            amount=amount,
            filled=filled,
            remaining=remaining if remaining is not None else amount - filled,
            price=_d(o.get("price")),
            stop_price=trigger,
            average=_d(o.get("average")),
            cost=_d(o.get("cost")) or Decimal(0),
            fee=_d(fee.get("cost")),
            fee_asset=fee.get("currency"),
            timestamp=o.get("timestamp"),
            time_in_force=time_in_force_from_ccxt(o),
        )

    # -------------------------------------------------------------- checks
    def check_connection(self) -> ConnectionCheck:
        """Authenticated read (balance) plus, where the exchange tells, the key's permissions."""
        self.fetch_balance()
        check = ConnectionCheck(ok=True, spot=True, message="Connected: the API key can read the account.")
        restrictions = self._binance_restrictions()
        if restrictions is not None:
            spot = bool(restrictions.get("enableSpotAndMarginTrading"))
            futures = bool(restrictions.get("enableFutures"))
            withdraw = bool(restrictions.get("enableWithdrawals"))
            check = ConnectionCheck(
                ok=True,
                spot=spot,
                futures=futures,
                read_only=not (spot or futures),
                withdraw=withdraw,
                message="Connected." + (" WARNING: this key can withdraw funds." if withdraw else ""),
            )
        return check

    def _binance_restrictions(self) -> dict[str, Any] | None:
        fn = getattr(self.client, "sapi_get_account_apirestrictions", None)
        if fn is None or self.client.id not in ("binance", "binanceusdm", "binancecoinm"):
            return None
        try:
            return self._call(fn, retry=False)
        except ExchangeError:
            return None  # not fatal: the key works, its permissions are just unknown
