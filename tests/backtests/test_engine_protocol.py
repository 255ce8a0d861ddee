"""The ``Broker`` protocol lives in its own module and the backtest broker implements it."""

from __future__ import annotations

import inspect

from apps.backtests.engine import BacktestConfig, Broker, SimulatedBroker, protocol

from .engine_support import candles


def test_broker_protocol_has_its_own_module_and_the_package_exports_it():
    assert Broker is protocol.Broker
    assert Broker.__module__ == "apps.backtests.engine.protocol"


def test_simulated_broker_implements_every_protocol_method_with_the_same_parameters():
    broker = SimulatedBroker(candles([(100, 100, 100, 100)]), BacktestConfig())
    assert isinstance(broker, Broker)
    for name, member in inspect.getmembers(Broker, inspect.isfunction):
        if name.startswith("_"):
            continue
        wanted = list(inspect.signature(member).parameters)
        actual = list(inspect.signature(getattr(SimulatedBroker, name)).parameters)
        assert actual[: len(wanted)] == wanted, name
