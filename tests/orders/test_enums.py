"""The one order vocabulary and its only translation to and from ccxt's strings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.orders.enums import (
    OrderStatus,
    OrderType,
    TimeInForce,
    status_from_ccxt,
    status_to_ccxt,
    time_in_force_from_ccxt,
    to_ccxt_order,
    type_from_ccxt,
)

D = Decimal


@pytest.mark.parametrize(
    ("kind", "price", "stop", "expected"),
    [
        ("market", None, None, ("market", None, {})),
        ("limit", D("100"), None, ("limit", D("100"), {})),
        ("stop_market", None, D("90"), ("market", None, {"triggerPrice": "90"})),
        ("stop_limit", D("89"), D("90"), ("limit", D("89"), {"triggerPrice": "90"})),
        ("take_profit", D("120"), None, ("market", None, {"takeProfitPrice": "120"})),
        ("take_profit_limit", D("119"), D("120"), ("limit", D("119"), {"takeProfitPrice": "120"})),
    ],
)
def test_every_order_type_maps_to_a_ccxt_type_and_trigger_param(kind, price, stop, expected):
    assert to_ccxt_order(type=kind, price=price, stop_price=stop) == expected


def test_trailing_stop_sends_ccxts_trailing_percent_and_activation_price():
    _, price, params = to_ccxt_order(
        type=OrderType.TRAILING_STOP, price=None, stop_price=D("95"), trailing_percent=D("1.5")
    )
    assert price is None and params == {"trailingPercent": "1.5", "trailingTriggerPrice": "95"}


@pytest.mark.parametrize(
    ("tif", "params"),
    [
        ("GTC", {}),
        ("IOC", {"timeInForce": "IOC"}),
        ("FOK", {"timeInForce": "FOK"}),
        ("PO", {"postOnly": True}),
    ],
)
def test_time_in_force_maps_to_ccxt_params(tif, params):
    assert to_ccxt_order(type="limit", price=D("1"), stop_price=None, time_in_force=tif)[2] == params


def test_an_unknown_order_type_is_refused_not_sent():
    with pytest.raises(ValueError):
        to_ccxt_order(type="stop", price=None, stop_price=D("1"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "market"}, OrderType.MARKET),
        ({"type": "limit"}, OrderType.LIMIT),
        ({"type": "market", "triggerPrice": 90}, OrderType.STOP_MARKET),
        ({"type": "limit", "stopPrice": 90}, OrderType.STOP_LIMIT),
        ({"type": "market", "takeProfitPrice": 120}, OrderType.TAKE_PROFIT),
        ({"type": "limit", "takeProfitPrice": 120}, OrderType.TAKE_PROFIT_LIMIT),
        ({"type": "STOP_LOSS"}, OrderType.STOP_MARKET),
        ({"type": "stop_loss_limit"}, OrderType.STOP_LIMIT),
        ({"type": "take_profit_limit"}, OrderType.TAKE_PROFIT_LIMIT),
        ({"type": "TRAILING_STOP_MARKET"}, OrderType.TRAILING_STOP),
        ({"type": None}, OrderType.MARKET),
    ],
)
def test_ccxt_order_types_read_back_as_our_types(raw, expected):
    assert type_from_ccxt(raw) == expected


@pytest.mark.parametrize(
    ("ccxt", "filled", "ours"),
    [
        ("open", D("0"), OrderStatus.OPEN),
        ("open", D("0.1"), OrderStatus.PARTIALLY_FILLED),
        (None, None, OrderStatus.OPEN),
        ("closed", D("1"), OrderStatus.FILLED),
        ("canceled", D("0.1"), OrderStatus.CANCELLED),
        ("expired", D("0"), OrderStatus.EXPIRED),
        ("rejected", D("0"), OrderStatus.REJECTED),
    ],
)
def test_ccxt_statuses_read_back_as_our_statuses(ccxt, filled, ours):
    assert status_from_ccxt(ccxt, filled=filled) == ours


def test_every_status_has_a_ccxt_spelling_that_reads_back_as_a_compatible_status():
    for status in OrderStatus:
        back = status_from_ccxt(status_to_ccxt(status), filled=D("0"))
        assert back == status or (status in ("pending", "partially_filled") and back == "open")


@pytest.mark.parametrize(
    ("raw", "tif"),
    [
        ({}, TimeInForce.GTC),
        ({"timeInForce": "IOC"}, TimeInForce.IOC),
        ({"timeInForce": "fok"}, TimeInForce.FOK),
        ({"timeInForce": "GTC", "postOnly": True}, TimeInForce.POST_ONLY),
        ({"timeInForce": "GTX"}, TimeInForce.POST_ONLY),
        ({"timeInForce": "GTD"}, TimeInForce.GTC),
    ],
)
def test_ccxt_time_in_force_reads_back(raw, tif):
    assert time_in_force_from_ccxt(raw) == tif
