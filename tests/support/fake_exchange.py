"""A local stand-in for Binance's REST API that ccxt's own client talks to.

``FakeBinance`` is a real HTTP server (thread, 127.0.0.1, free port). It answers
from ccxt's recorded Binance responses (``shared/data/ccxt_static``), serves an
``exchangeInfo`` built from the offline market catalog so ``load_markets()``
works, and serves klines from candles a test provides, with Binance's paging
rules. Tests program anything else::

    with FakeBinance() as fake:
        ex = ccxt.binance({"enableRateLimit": False})
        fake.attach(ex)                         # ex.urls["api"] -> the local server
        fake.set_klines("BTCUSDT", "1m", rows)  # [[ms, o, h, l, c, v], ...]
        fake.fail("GET", "/api/v3/klines", status=429, times=2)
        fake.route("GET", "/api/v3/account", lambda req: {"balances": []})
        fake.route_recorded("fetchBalance")     # the recorded answer, at the recorded path
        ...
        fake.requests                           # every request seen (FakeRequest)

A handler gets a ``FakeRequest`` and returns a JSON-able value (status 200), a
``FakeResponse`` (any status/headers/body) or ``DROP`` (close the connection
without answering: a network error for the client). Routes may be given for
any method and path, so private endpoints (balance, orders) plug in the same way.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

ROOT = Path(__file__).resolve().parents[2]
DROP = object()
INTERVAL_MS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
    "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000,
    "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}  # fmt: skip


def shared_data_dir() -> Path:
    return Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    params: dict[str, str] = field(default_factory=dict)  # query + form body merged

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self.params.get(name)
        return default if value in (None, "") else int(value)


@dataclass
class FakeResponse:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (timeouts)


Handler = Callable[[FakeRequest], Any]


def _dec(value: Decimal | None, default: str = "0") -> str:
    return format(value, "f") if value is not None else default


def _binance_spot_symbol(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbol": spec["exchange_symbol"],
        "status": "TRADING",
        "baseAsset": spec["base"],
        "baseAssetPrecision": 8,
        "quoteAsset": spec["quote"],
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": _dec(spec["precision_price"]), "maxPrice": "1000000",
             "tickSize": _dec(spec["precision_price"])},
            {"filterType": "LOT_SIZE", "minQty": _dec(spec["min_amount"]), "maxQty": "9000000",
             "stepSize": _dec(spec["precision_amount"])},
            {"filterType": "NOTIONAL", "minNotional": _dec(spec["min_notional"]), "applyMinToMarket": True,
             "maxNotional": "9000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
    }  # fmt: skip


def _binance_swap_symbol(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbol": spec["exchange_symbol"],
        "pair": spec["exchange_symbol"],
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "baseAsset": spec["base"],
        "quoteAsset": spec["quote"],
        "marginAsset": spec["quote"],
        "pricePrecision": 4,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": _dec(spec["precision_price"]), "maxPrice": "1000000",
             "tickSize": _dec(spec["precision_price"])},
            {"filterType": "LOT_SIZE", "minQty": _dec(spec["min_amount"]), "maxQty": "9000000",
             "stepSize": _dec(spec["precision_amount"])},
            {"filterType": "MARKET_LOT_SIZE", "minQty": _dec(spec["min_amount"]), "maxQty": "9000000",
             "stepSize": _dec(spec["precision_amount"])},
            {"filterType": "MIN_NOTIONAL", "notional": _dec(spec["min_notional"])},
        ],
    }  # fmt: skip


class FakeBinance:
    """See the module docstring."""

    def __init__(self, *, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir or shared_data_dir() / "ccxt_static"
        self.recorded = json.loads((self.data_dir / "response_binance.json").read_text())["methods"]
        self.recorded_requests = json.loads((self.data_dir / "request_binance.json").read_text())["methods"]
        self.requests: list[FakeRequest] = []
        self.klines: dict[tuple[str, str], list[list[Any]]] = {}
        self._routes: dict[tuple[str, str], Handler] = {}
        self._failures: dict[tuple[str, str], list[FakeResponse | object]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.server_time_ms: int | None = None  # None: real clock
        self._install_defaults()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> FakeBinance:
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-binance", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def attach(self, client: Any) -> Any:
        """Point a ccxt client's API URLs at this server (paths kept); returns the client."""
        from apps.exchanges.gateway.ccxt_gateway import point_at

        point_at(client, self.base_url)
        return client

    def overrides(self) -> dict[str, str]:
        """For ``settings.MARKETDATA_API_OVERRIDES`` (clients built by the app)."""
        return {"binance": self.base_url, "binanceusdm": self.base_url}

    # ------------------------------------------------------------ programming
    def route(self, method: str, path: str, handler: Handler | Any) -> None:
        """Answer ``method path`` with ``handler(request)`` (or a constant JSON value)."""
        fn = handler if callable(handler) else (lambda request, value=handler: value)
        with self._lock:
            self._routes[(method.upper(), path)] = fn

    def fail(
        self, method: str, path: str, *, status: int = 500, times: int = 1, body: Any = None,
        headers: dict[str, str] | None = None, drop: bool = False, delay: float = 0.0,
    ) -> None:  # fmt: skip
        """Make the next ``times`` requests to ``path`` fail (status/body, or dropped connection)."""
        if body is None:
            body = {
                429: {
                    "code": -1003,
                    "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE.",
                },
                418: {"code": -1003, "msg": "Way too many requests; IP banned until 1700000000000."},
            }.get(
                status,
                {"msg": "Service Unavailable."} if status >= 500 else {"code": -1000, "msg": "Bad request."},
            )
        item: FakeResponse | object = DROP if drop else FakeResponse(status, body, headers or {}, delay)
        with self._lock:
            self._failures.setdefault((method.upper(), path), []).extend([item] * times)

    def recorded_case(self, method: str, case: int | str = 0) -> dict[str, Any]:
        cases = self.recorded[method]
        if isinstance(case, str):
            return next(c for c in cases if c["description"] == case)
        return cases[case]

    def recorded_path(self, method: str, case: int | str = 0) -> str:
        """The URL path ccxt's recorded request uses for ``method`` (first case by default)."""
        cases = self.recorded_requests[method]
        if isinstance(case, str):
            chosen = next(c for c in cases if c["description"] == case)
        else:
            chosen = cases[case]
        return urlsplit(chosen["url"]).path

    def route_recorded(
        self, method: str, case: int | str = 0, *, path: str | None = None, http: str = "GET"
    ) -> None:
        """Serve the recorded raw response of ``method`` at its recorded (or the given) path."""
        response = self.recorded_case(method, case)["httpResponse"]
        self.route(http, path or self.recorded_path(method), response)

    def set_klines(self, exchange_symbol: str, interval: str, rows: list[list[Any]]) -> None:
        """Candles the klines endpoints serve: ``[[open ms, o, h, l, c, v], ...]`` sorted."""
        self.klines[(exchange_symbol, interval)] = [list(r) for r in rows]

    def requests_to(self, path: str) -> list[FakeRequest]:
        return [r for r in self.requests if r.path == path]

    # ------------------------------------------------------------ defaults
    def _install_defaults(self) -> None:
        from apps.marketdata.offline_markets import OFFLINE_MARKETS

        spot = [_binance_spot_symbol(s) for s in OFFLINE_MARKETS["binance"]]
        swaps = [_binance_swap_symbol(s) for s in OFFLINE_MARKETS["binanceusdm"]]

        def info(symbols: list[dict[str, Any]]) -> Handler:
            return lambda request: {
                "timezone": "UTC", "serverTime": self._now(), "rateLimits": [], "exchangeFilters": [],
                "symbols": symbols,
            }  # fmt: skip

        self.route("GET", "/api/v3/exchangeInfo", info(spot))
        self.route("GET", "/fapi/v1/exchangeInfo", info(swaps))
        self.route("GET", "/dapi/v1/exchangeInfo", info([]))
        self.route("GET", "/api/v3/time", lambda request: {"serverTime": self._now()})
        self.route("GET", "/api/v3/ping", {})
        for path in ("/api/v3/klines", "/fapi/v1/klines"):
            self.route("GET", path, self._klines)
        self.route(
            "GET", "/api/v3/ticker/24hr", self._recorded_with_symbol("fetchTicker", "public spot ticker")
        )
        self.route(
            "GET",
            "/api/v3/depth",
            lambda request: self.recorded_case("fetchOrderBook", "spot orderbook")["httpResponse"],
        )
        self.route("GET", "/api/v3/aggTrades", lambda request: self.recorded_case("fetchTrades", "public spot trades")["httpResponse"])  # fmt: skip

    def _now(self) -> int:
        return self.server_time_ms if self.server_time_ms is not None else int(time.time() * 1000)

    def _recorded_with_symbol(self, method: str, case: str) -> Handler:
        def handler(request: FakeRequest) -> Any:
            body = dict(self.recorded_case(method, case)["httpResponse"])
            if "symbol" in request.params:
                body["symbol"] = request.params["symbol"]
            return body

        return handler

    def _klines(self, request: FakeRequest) -> Any:
        symbol, interval = request.params.get("symbol", ""), request.params.get("interval", "")
        rows = self.klines.get((symbol, interval))
        if rows is None:
            if not self.klines:  # nothing programmed: the recorded answer
                return self.recorded_case("fetchOHLCV", 0)["httpResponse"]
            return FakeResponse(400, {"code": -1121, "msg": "Invalid symbol."})
        limit = min(request.int("limit", 500) or 500, 1000)  # Binance: default 500, max 1000
        start, end = request.int("startTime"), request.int("endTime")
        step = INTERVAL_MS.get(interval, 60_000)
        out = [r for r in rows if (start is None or r[0] >= start) and (end is None or r[0] <= end)]
        out = out[:limit] if start is not None else out[-limit:]
        return [
            [
                r[0],
                str(r[1]),
                str(r[2]),
                str(r[3]),
                str(r[4]),
                str(r[5]),
                r[0] + step - 1,
                "0",
                0,
                "0",
                "0",
                "0",
            ]
            for r in out
        ]

    # ------------------------------------------------------------ serving
    def _dispatch(self, http: BaseHTTPRequestHandler) -> None:
        split = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        body = http.rfile.read(length).decode() if length else ""
        query = dict(parse_qsl(split.query))
        params = {**query, **(dict(parse_qsl(body)) if body and not body.startswith("{") else {})}
        request = FakeRequest(http.command, split.path, query, dict(http.headers), body, params)
        key = (http.command, split.path)
        with self._lock:
            self.requests.append(request)
            queued = self._failures.get(key)
            failure = queued.pop(0) if queued else None
            handler = self._routes.get(key)
        if failure is DROP:
            http.close_connection = True
            http.connection.shutdown(2)  # no answer at all: the client sees a network error
            return
        if failure is not None:
            result: Any = failure
        elif handler is None:
            result = FakeResponse(404, {"code": -1, "msg": f"fake: no route for {http.command} {split.path}"})
        else:
            try:
                result = handler(request)
            except Exception as exc:  # a broken test handler: answer 500 and say why
                result = FakeResponse(500, {"code": -1000, "msg": f"fake handler error: {exc!r}"})
        if result is DROP:
            http.close_connection = True
            http.connection.shutdown(2)
            return
        response = result if isinstance(result, FakeResponse) else FakeResponse(200, result)
        if response.delay:
            time.sleep(response.delay)
        payload = json.dumps(response.body).encode()
        try:
            http.send_response(response.status)
            http.send_header("Content-Type", "application/json;charset=UTF-8")
            http.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                http.send_header(name, value)
            http.end_headers()
            http.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass
