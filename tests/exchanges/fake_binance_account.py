"""Binance's private spot endpoints for the shared ``FakeBinance`` server (added through its route API).

Keeps an order book of placed orders keyed by client order id, answers with
Binance's JSON shapes and error codes (-2015 bad key, -2010 rejected/duplicate,
-2013 unknown order, -2011 cancel rejected) so ccxt's own parser and error
mapping run unchanged.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_exchange import DROP, FakeBinance, FakeRequest, FakeResponse

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
# Binance lists and cancels an order while it is new or partially filled.
OPEN = ("NEW", "PARTIALLY_FILLED")


@dataclass
class BinanceAccount:
    fake: FakeBinance
    api_key: str = API_KEY
    balances: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"asset": "BTC", "free": "0.50000000", "locked": "0.10000000"},
            {"asset": "USDT", "free": "10000.12345678", "locked": "0.00000000"},
            {"asset": "ETH", "free": "0.00000000", "locked": "0.00000000"},
        ]
    )
    restrictions: dict[str, Any] = field(
        default_factory=lambda: {
            "ipRestrict": False,
            "createTime": 1698645219000,
            "enableReading": True,
            "enableSpotAndMarginTrading": True,
            "enableWithdrawals": False,
            "enableFutures": False,
            "enableMargin": False,
            "permitsUniversalTransfer": False,
        }
    )
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by clientOrderId
    insufficient: bool = False
    lose_next_create_answer: bool = False  # place the order, then drop the connection
    _ids: Any = field(default_factory=lambda: itertools.count(9780331417))

    def install(self) -> BinanceAccount:
        self.fake.route("GET", "/api/v3/account", self._guard(self._account))
        self.fake.route("POST", "/api/v3/order", self._guard(self._create))
        self.fake.route("GET", "/api/v3/order", self._guard(self._fetch))
        self.fake.route("DELETE", "/api/v3/order", self._guard(self._cancel))
        self.fake.route("GET", "/api/v3/openOrders", self._guard(self._open))
        self.fake.route("GET", "/sapi/v1/account/apiRestrictions", self._guard(lambda r: self.restrictions))
        return self

    def _guard(self, handler):
        def wrapped(request: FakeRequest) -> Any:
            if request.headers.get("X-MBX-APIKEY") != self.api_key or "signature" not in request.params:
                return FakeResponse(
                    401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
                )
            return handler(request)

        return wrapped

    def _account(self, request: FakeRequest) -> Any:
        return {
            "makerCommission": "10",
            "takerCommission": "10",
            "canTrade": True,
            "canWithdraw": bool(self.restrictions.get("enableWithdrawals")),
            "canDeposit": True,
            "updateTime": "1701856395927",
            "accountType": "SPOT",
            "balances": self.balances,
            "permissions": ["SPOT"],
        }

    def _order_json(self, order: dict[str, Any]) -> dict[str, Any]:
        return dict(order)

    def _create(self, request: FakeRequest) -> Any:
        p = request.params
        client_id = p.get("newClientOrderId", "")
        if client_id in self.orders:
            return FakeResponse(400, {"code": -2010, "msg": "Duplicate order sent."})
        if self.insufficient:
            return FakeResponse(
                400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}
            )
        market = p.get("type") == "MARKET"
        order = {
            "symbol": p["symbol"],
            "orderId": str(next(self._ids)),
            "orderListId": "-1",
            "clientOrderId": client_id,
            "transactTime": "1737635557417",
            "price": p.get("price", "0.00000000"),
            "origQty": p["quantity"],
            "executedQty": p["quantity"] if market else "0.00000000",
            "cummulativeQuoteQty": "0.00000000",
            "status": "FILLED" if market else "NEW",
            "timeInForce": p.get("timeInForce", "GTC"),
            "type": p["type"],
            "side": p["side"],
            "stopPrice": p.get("stopPrice", "0.00000000"),
            "workingTime": "1737635557417",
            "fills": [],
        }
        self.orders[client_id] = order
        if self.lose_next_create_answer:
            self.lose_next_create_answer = False
            return DROP  # placed, but the answer never reaches the client
        return order

    def _find(self, request: FakeRequest) -> dict[str, Any] | None:
        p = request.params
        if p.get("origClientOrderId"):
            return self.orders.get(p["origClientOrderId"])
        return next((o for o in self.orders.values() if o["orderId"] == p.get("orderId")), None)

    def _fetch(self, request: FakeRequest) -> Any:
        order = self._find(request)
        if order is None:
            return FakeResponse(400, {"code": -2013, "msg": "Order does not exist."})
        return order

    def _cancel(self, request: FakeRequest) -> Any:
        order = self._find(request)
        if order is None or order["status"] not in OPEN:
            return FakeResponse(400, {"code": -2011, "msg": "Unknown order sent."})
        order["status"] = "CANCELED"
        return order

    def _open(self, request: FakeRequest) -> Any:
        return [o for o in self.orders.values() if o["status"] in OPEN]
