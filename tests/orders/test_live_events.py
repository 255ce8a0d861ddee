"""An order placed through the running ASGI server pushes order, fill and position events to a real WebSocket."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
import requests
import websockets
from rest_framework_simplejwt.tokens import AccessToken

from tests.factories import PaperAccountFactory, UserFactory
from tests.support import aio

pytestmark = [pytest.mark.django_db(transaction=True)]


async def receive_types(ws, wanted: set[str], timeout: float = 20.0) -> dict[str, dict]:
    seen: dict[str, dict] = {}

    async def loop():
        while not wanted <= set(seen):
            event = json.loads(await ws.recv())
            seen.setdefault(event["type"], event)

    await asyncio.wait_for(loop(), timeout)
    return seen


def test_paper_market_order_events_reach_the_owners_websocket_only(live_server_url, candles_stored):
    user, other = UserFactory(), UserFactory()
    PaperAccountFactory(user=user, max_volume_fraction=None, initial_balances={"USDT": "100000"})
    token, other_token = str(AccessToken.for_user(user)), str(AccessToken.for_user(other))
    ws_base = live_server_url.replace("http://", "ws://") + "/ws/events/?token="

    def place() -> requests.Response:
        return requests.post(
            live_server_url + "/api/v1/orders/",
            json={"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.01"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=20,
        )

    async def scenario():
        async with (
            websockets.connect(ws_base + token, origin="http://127.0.0.1") as ws,
            websockets.connect(ws_base + other_token, origin="http://127.0.0.1") as other_ws,
        ):
            await receive_types(ws, {"connected"})
            await receive_types(other_ws, {"connected"})
            response = await asyncio.to_thread(place)
            assert response.status_code == 201, response.text
            order = response.json()
            events = await receive_types(
                ws, {"order.created", "order.updated", "fill.created", "position.updated"}
            )
            assert events["order.updated"]["payload"]["id"] == order["id"]
            assert events["order.updated"]["payload"]["status"] == "filled"
            assert Decimal(events["fill.created"]["payload"]["amount"]) == Decimal("0.01")
            assert events["position.updated"]["payload"]["side"] == "long"
            with pytest.raises(TimeoutError):
                await receive_types(other_ws, {"order.created"}, timeout=1.5)

    aio.run(scenario())
