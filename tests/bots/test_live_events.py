"""A paper bot started through the API of the running ASGI server trades on the replay feed,
ticked by a real Celery worker, and its events reach a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest
import requests
import websockets
from rest_framework_simplejwt.tokens import AccessToken

from apps.bots import services
from apps.bots.models import Bot, BotEvent
from apps.exchanges.models import PaperTrade
from apps.orders.models import Fill, Order, Position
from tests.bots.support import CROSS_PARAMS, store_candles_on_replay
from tests.factories import UserFactory
from tests.support import aio

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def log_of(seen: list[dict]) -> list[dict]:
    """The bot's log lines among the events the browser received."""
    return [e["payload"] for e in seen if e["type"] == "bot.event"]


def test_paper_bot_started_through_the_api_trades_on_the_replay_feed_and_its_events_reach_the_browser(
    live_server_url, celery_worker
):
    user = UserFactory()
    token = str(AccessToken.for_user(user))
    headers = {"Authorization": f"Bearer {token}"}
    candle = store_candles_on_replay()  # offline: the feed just closed an SMA 2/3 cross up
    body = {
        "name": "live events bot",
        "strategy": "sma_crossover",
        "params": CROSS_PARAMS,
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
    }

    def api(method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, live_server_url + path, headers=headers, timeout=20, **kwargs)

    async def events_until(ws, done, timeout: float = 40.0) -> list[dict]:
        seen: list[dict] = []

        async def loop():
            while not done(seen):
                seen.append(json.loads(await ws.recv()))

        await asyncio.wait_for(loop(), timeout)
        return seen

    def types(seen: list[dict]) -> set[str]:
        return {event["type"] for event in seen}

    async def scenario() -> tuple[int, list[dict]]:
        ws_url = live_server_url.replace("http://", "ws://") + "/ws/events/?token=" + token
        async with websockets.connect(ws_url, origin="http://127.0.0.1") as ws:
            await events_until(ws, lambda seen: "connected" in types(seen))
            created = await asyncio.to_thread(api, "POST", "/api/v1/bots/", json=body)
            assert created.status_code == 201, created.text
            bot_id = created.json()["id"]
            started = await asyncio.to_thread(api, "POST", f"/api/v1/bots/{bot_id}/start/")
            assert started.json()["status"] == "starting"
            seen = await events_until(
                ws,
                lambda seen: any(
                    e["type"] == "bot.status" and e["payload"]["status"] == "running" for e in seen
                ),
            )
            # The beat job's enqueue: the worker ticks the candle the replay feed closed.
            assert await asyncio.to_thread(services.bots_enqueue_due) == 1
            # All sent on the fill's commit: the position and the bot's log line with it.
            seen += await events_until(
                ws,
                lambda more: (
                    {"order.created", "order.updated", "fill.created", "position.updated"} <= types(more)
                    and any(e["type"] == "bot.event" and e["payload"]["kind"] == "fill" for e in more)
                ),
            )
            return bot_id, seen

    bot_id, seen = aio.run(scenario())
    client_order_id = f"bot{bot_id}-{candle}-0"
    statuses = [e["payload"]["status"] for e in seen if e["type"] == "bot.status"]
    assert statuses[:2] == ["starting", "running"]
    log = log_of(seen)
    assert {"lifecycle", "signal"} <= {line["kind"] for line in log}
    signal = next(line for line in log if line["kind"] == "signal")
    assert signal["data"]["candle"] == candle and signal["data"]["client_order_ids"] == [client_order_id]

    order = Order.objects.get(client_order_id=client_order_id)
    assert (order.bot_id, order.side, order.type, order.status) == (bot_id, "buy", "market", "filled")
    fill_event = next(e["payload"] for e in seen if e["type"] == "fill.created")
    assert (fill_event["client_order_id"], fill_event["bot_id"]) == (client_order_id, bot_id)
    # The fill is the paper exchange's trade, to the smallest unit.
    fill, trade = (
        Fill.objects.get(order=order),
        PaperTrade.objects.get(order__client_order_id=client_order_id),
    )
    assert (fill.price, fill.amount, fill.fee) == (trade.price, trade.amount, trade.fee)
    assert Decimal(fill_event["amount"]) == fill.amount == order.amount
    assert Decimal(fill_event["price"]) == fill.price
    updated = [e["payload"] for e in seen if e["type"] == "order.updated" and e["payload"]["id"] == order.pk]
    assert updated[-1]["status"] == "filled"
    # The bot's log says so, once, with the fill's numbers.
    fill_lines = [line for line in log_of(seen) if line["kind"] == "fill"]
    assert len(fill_lines) == 1 and fill_lines[0]["bot"] == bot_id
    line = fill_lines[0]["data"]
    assert (line["client_order_id"], line["trade_id"]) == (client_order_id, fill.exchange_trade_id)
    assert (line["amount"], line["price"], line["fee"]) == (str(fill.amount), str(fill.price), str(fill.fee))
    assert BotEvent.objects.filter(bot_id=bot_id, kind="fill").count() == 1

    # The worker built the bot's position from that one fill: long its amount at its price,
    # its realized P&L the buy's fee (paid in the quote asset), marked at the fill price.
    position = Position.objects.get(paper_account_id=order.paper_account_id, symbol="BTC/USDT")
    assert (position.side, position.size, position.average_entry) == ("long", fill.amount, fill.price)
    assert fill.fee_asset == "USDT" and fill.fee > 0
    assert position.realized_pnl == -fill.fee
    assert (position.mark_price, position.unrealized_pnl) == (fill.price, 0)
    pushed = [e["payload"] for e in seen if e["type"] == "position.updated"][-1]
    assert pushed["id"] == position.pk and pushed["side"] == "long"
    assert (Decimal(pushed["size"]), Decimal(pushed["average_entry"]), Decimal(pushed["realized_pnl"])) == (
        position.size,
        position.average_entry,
        position.realized_pnl,
    )

    assert api("POST", f"/api/v1/bots/{bot_id}/stop/").json()["status"] == "stopping"
    # The worker finishes the stop (and the tick before it) before the test's tables are
    # emptied: a TRUNCATE racing its row locks deadlocked once.
    deadline = time.monotonic() + 30
    while Bot.objects.get(pk=bot_id).status != Bot.Status.STOPPED:
        assert time.monotonic() < deadline, "the bot never stopped"
        time.sleep(0.2)
