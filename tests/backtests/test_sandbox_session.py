"""The sandbox's step mode (``sandbox/session.py``): a user strategy loaded once in a locked-down
process and stepped candle by candle, as a running bot does; its broker calls answered by the
bot's real ``GatewayBroker``; its state carried as JSON from one process to another; the
backtests' limits enforced per step; the per-process pool of sessions.

No database: the broker is built from a balance as a tick builds it.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from decimal import Decimal

import numpy as np
import pytest

from apps.backtests.engine import Candles, StrategyError
from apps.backtests.engine.errors import ParamError
from apps.backtests.strategies.sandbox import (
    CodeValidationError,
    SandboxCrash,
    SandboxLimits,
    SandboxMemoryError,
    SandboxTimeout,
)
from apps.backtests.strategies.sandbox.session import KEEP, SandboxSession, SessionPool, answer_call
from apps.backtests.strategies.stepping import signal_flags
from apps.bots.services.broker import GatewayBroker
from apps.exchanges.gateway.base import AccountBalance, Balance

LIMITS = SandboxLimits(cpu_seconds=5, wall_seconds=30)

SMA = textwrap.dedent(
    """
    import numpy as np


    class Cross(SignalStrategy):
        params = {"fast": Param("int", 3, min=2), "slow": Param("int", 8, min=3)}

        def signals(self, data):
            close = data.close
            fast = np.convolve(close, np.ones(self.p.fast) / self.p.fast)[: len(close)]
            slow = np.convolve(close, np.ones(self.p.slow) / self.p.slow)[: len(close)]
            above = fast > slow
            prev = np.concatenate(([False], above[:-1]))
            print("candles", len(close))
            return Signals(long_entries=above & ~prev, long_exits=~above & prev, stop_loss=0.05)
    """
)

# Places a buy limit every other candle under the close, counts its fills, keeps a module
# global to show that nothing but the saved state carries over.
LADDER = textwrap.dedent(
    """
    SEEN = []


    class Ladder(Strategy):
        params = {"step": Param("float", 0.01, min=0.001, max=0.5)}

        def initialize(self):
            self.placed = {}
            self.filled = []
            self.first_index = self.candle.index

        def on_fill(self, fill):
            self.filled.append([fill.id, fill.filled_price, self.candle.index])

        def on_data(self, candle):
            SEEN.append(candle.index)
            if candle.index % 2 == 0:
                oid = self.buy_limit(0.1, candle.close * (1 - self.p.step))
                self.placed[oid] = candle.index
            self.seen_in_module = len(SEEN)
            self.last_history = float(self.history(3).close[0])
            self.position = self.get_position_size()
            self.open = len(self.get_open_orders())
    """
)


def candles(n: int = 60) -> Candles:
    close = 100.0 + np.sin(np.arange(n) / 3.0) * 5.0
    return Candles.from_arrays(
        np.arange(n, dtype=np.int64) * 3_600_000, close, close + 1.0, close - 1.0, close, np.ones(n)
    )


def broker(data: Candles, first_id: int = 1000, *, base: str = "0.5") -> GatewayBroker:
    return GatewayBroker(
        candles=data,
        balance=AccountBalance(
            balances={
                "BTC": Balance("BTC", free=Decimal(base), used=Decimal(0), total=Decimal(base)),
                "USDT": Balance("USDT", free=Decimal(1000), used=Decimal(0), total=Decimal(1000)),
            }
        ),
        open_orders=[],
        base="BTC",
        quote="USDT",
        sizing=None,
        fee_rate=0.001,
        defaults={"stop_loss": None, "take_profit": None, "trailing_stop": None},
        first_id=first_id,
    )


@pytest.fixture
def ladder():
    session = SandboxSession(LADDER, {"step": 0.02}, limits=LIMITS)
    yield session
    session.close()


def test_a_signal_session_says_what_the_strategy_says_on_each_last_candle():
    data = candles()
    session = SandboxSession(SMA, {"fast": 3, "slow": 8}, limits=LIMITS)
    try:
        assert session.style == "signal" and session.start_seconds > 0
        # The same code in this process, for reference (the test's own trusted copy).
        namespace: dict = {}
        from apps.backtests.engine import Param, Signals, SignalStrategy

        namespace.update(Param=Param, Signals=Signals, SignalStrategy=SignalStrategy, print=lambda *a: None)
        exec(SMA, namespace)
        local = namespace["Cross"](fast=3, slow=8)
        seen = set()
        for end in range(10, len(data) + 1):
            window = data.slice(0, end)
            flags = session.signals(window)
            assert flags == signal_flags(local, window)
            seen.update(flags["signals"])
        assert {"long_entries", "long_exits"} <= seen
        assert flags["stop_loss"] == 0.05
        assert session.logs == f"candles {len(data)}\n"  # what it printed on the last step
    finally:
        session.close()


def test_event_steps_call_the_bots_broker_and_return_their_state(ladder):
    data = candles()
    first = broker(data.slice(0, 10), first_id=9000)
    told, attrs = ladder.event(data.slice(0, 10), first, index=10, fresh=True, state=None, dump=True)
    assert told == ["initialize", "on_data"]
    # The broker decided the order and its id; the strategy kept that id.
    assert [(d["side"], d["type"]) for d in first.decisions] == [("buy", "limit")]
    assert attrs["placed"] == {"__items__": [[9000, 10]]}
    assert attrs["position"] == 0.5 and attrs["open"] == 0
    assert attrs["last_history"] == float(data.close[7])  # history answered from the step's window
    assert attrs["first_index"] == 10
    assert json.loads(json.dumps(attrs)) == attrs


def test_the_state_carries_a_strategy_from_one_process_to_another(ladder):
    """Steps split over two processes (state out and back in as JSON) end where one object
    stepped in one process ends: same decisions, same state."""
    from apps.backtests.engine import OrderInfo

    data = candles()
    other = SandboxSession(LADDER, {"step": 0.02}, limits=LIMITS)
    kept = SandboxSession(LADDER, {"step": 0.02}, limits=LIMITS)
    try:
        state = None
        for i in range(5, 25):
            fills = []
            if i % 4 == 1:  # an order of the strategy filled
                fills = [
                    OrderInfo(
                        i * 10, "limit", "buy", 0.1, 99.0, None, None, False, "filled", 0.1, 99.0, None, ""
                    )
                ]
            window = data.slice(0, i + 1)
            one, two = broker(window, first_id=i * 1000), broker(window, first_id=i * 1000)
            session = ladder if i % 2 else other  # a different process every candle
            told, state = session.event(
                window, one, index=i, fresh=i == 5, state=state, fills=fills, dump=True
            )
            told_kept, _ = kept.event(
                window, two, index=i, fresh=i == 5, state=None if i == 5 else KEEP, fills=fills
            )
            assert told == told_kept
            assert one.decisions == two.decisions
        _, final_kept = kept.event(window, broker(window), index=25, fresh=False, state=KEEP, dump=True)
        _, final = ladder.event(window, broker(window), index=25, fresh=False, state=state, dump=True)
    finally:
        other.close()
        kept.close()
    # Candles 9, 13, 17 and 21 reported a fill (the first step, 5, starts afresh: no fills).
    assert [row[2] for row in final["filled"]] == [8, 12, 16, 20]  # seen on the previous candle
    # Module globals do not outlive a step that restores a state (a fresh module each time);
    # the kept object saw every candle in its one module.
    assert final["seen_in_module"] == 1
    assert final_kept["seen_in_module"] == 21
    final.pop("seen_in_module"), final_kept.pop("seen_in_module")
    assert final == final_kept


def test_a_state_the_codec_cannot_save_fails_the_step_with_the_reason():
    source = LADDER.replace("self.open = len(self.get_open_orders())", "self.open = self.get_open_orders()")
    session = SandboxSession(source, {}, limits=LIMITS)
    data = candles(20)
    with pytest.raises(StrategyError, match=r"keeps a OrderInfo in Ladder\.open"):
        session.event(data, _with_open_order(data), index=0, fresh=True, state=None, dump=True)
    assert not session.alive  # a failed step closes the session


def _with_open_order(data: Candles) -> GatewayBroker:
    from apps.exchanges.gateway.base import Order

    b = broker(data)
    b._open = [
        Order(
            id="7",
            client_order_id="x",
            symbol="BTC/USDT",
            side="buy",
            type="limit",
            status="open",
            amount=Decimal("0.1"),
            filled=Decimal("0"),
            remaining=Decimal("0.1"),
            price=Decimal("90"),
        )
    ]
    return b


def test_bad_broker_arguments_are_refused_with_a_message_not_trusted():
    assert "error" in answer_call(broker(candles(5)), {"method": "_open", "args": [], "kwargs": {}})
    assert "error" in answer_call(broker(candles(5)), {"method": "limit", "args": [[1], 1, 1], "kwargs": {}})
    assert "error" in answer_call(
        broker(candles(5)), {"method": "market", "args": [1, None], "kwargs": {"price": 3}}
    )
    assert "error" in answer_call(
        broker(candles(5)), {"method": "limit", "args": [7, 1.0, 1.0], "kwargs": {}}
    )
    assert answer_call(broker(candles(5)), {"method": "position_size", "args": [], "kwargs": {}}) == {
        "type": "answer",
        "value": 0.5,
    }
    source = LADDER.replace("self.buy_limit(0.1, ", "self.broker.limit(7, 0.1, ")
    session = SandboxSession(source, {}, limits=LIMITS)
    with pytest.raises(StrategyError, match="BrokerError: limit"):
        session.event(candles(20), broker(candles(20)), index=0, fresh=True, state=None)


def test_invalid_code_and_parameters_fail_the_start():
    with pytest.raises(CodeValidationError):
        SandboxSession("import os\n" + LADDER, {}, limits=LIMITS)
    with pytest.raises(ParamError):
        SandboxSession(LADDER, {"step": 5}, limits=LIMITS)


def test_an_endless_step_is_stopped_by_the_cpu_limit_and_the_next_session_works():
    source = LADDER.replace("SEEN.append(candle.index)", "while candle.index > 2:\n                pass")
    session = SandboxSession(source, {}, limits=SandboxLimits(cpu_seconds=1, wall_seconds=30))
    data = candles(20)
    session.event(data, broker(data), index=0, fresh=True, state=None)  # fine on the first candles
    started = time.monotonic()
    with pytest.raises(SandboxTimeout, match="CPU-time limit of 1 s"):
        session.event(data, broker(data), index=5, fresh=False, state=KEEP)
    assert time.monotonic() - started < 10
    assert not session.alive
    with pytest.raises(SandboxCrash, match="closed"):
        session.event(data, broker(data), index=6, fresh=False, state=KEEP)
    again = SandboxSession(LADDER, {}, limits=LIMITS)
    assert again.event(data, broker(data), index=0, fresh=True, state=None)[0] == ["initialize", "on_data"]
    again.close()


def test_the_cpu_limit_is_per_step_not_per_session():
    # About 0.4 s of CPU per step against a 1 s limit: five steps use twice the limit in all.
    source = SMA.replace('print("candles", len(close))', "x = sum(i * i for i in range(3_000_000))")
    session = SandboxSession(source, {}, limits=SandboxLimits(cpu_seconds=1, wall_seconds=30))
    try:
        for _ in range(5):
            session.signals(candles())
    finally:
        session.close()


def test_a_step_past_the_wall_clock_is_killed():
    source = SMA.replace('print("candles", len(close))', "while True:\n                pass")
    session = SandboxSession(source, {}, limits=SandboxLimits(cpu_seconds=60, wall_seconds=2))
    with pytest.raises(SandboxTimeout, match="wall-clock limit of 2 s"):
        session.signals(candles())
    assert not session.alive


def test_a_memory_bomb_in_a_step_is_stopped_by_the_memory_limit():
    source = SMA.replace('print("candles", len(close))', "x = [0] * (10 ** 10)")
    session = SandboxSession(
        source, {}, limits=SandboxLimits(memory_mb=1024, cpu_seconds=10, wall_seconds=30)
    )
    with pytest.raises(SandboxMemoryError, match="ran out of memory"):
        session.signals(candles())
    assert not session.alive


def test_a_session_whose_process_died_reports_a_crash():
    session = SandboxSession(SMA, {}, limits=LIMITS)
    os.kill(session.proc.pid, signal.SIGKILL)
    session.proc.wait()
    with pytest.raises(SandboxCrash):
        session.signals(candles())


def test_the_pool_reuses_restarts_bounds_and_idles_out_sessions():
    pool = SessionPool(max_sessions=2, idle_seconds=60)

    def start():
        return SandboxSession(SMA, {}, limits=LIMITS)

    try:
        with pool.session("a", 1, start) as a:
            a.signals(candles())
        with pool.session("a", 1, start) as again:
            assert again is a  # reused
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait()
        with pool.session("a", 1, start) as restarted:
            assert restarted is not a and restarted.alive  # a dead process is replaced
        with pool.session("a", 2, start) as changed:
            assert changed is not restarted and not restarted.alive  # new code or parameters
        with pytest.raises(RuntimeError), pool.session("a", 2, start) as failing:
            raise RuntimeError("the caller failed while holding it")
        assert not failing.alive  # closed: the next use starts afresh
        with pool.session("a", 2, start):
            pass
        with pool.session("b", 1, start):
            pass
        with pool.session("c", 1, start) as c:
            pass
        assert len(pool) == 2  # "a", the least recently used, was closed
        assert pool.started == 6
        pool.idle_seconds = 0
        time.sleep(0.01)
        pool.evict()
        assert len(pool) == 0 and not c.alive
    finally:
        pool.clear()
