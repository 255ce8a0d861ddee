"""Long-lived sandbox sessions: a user strategy loaded once, then stepped candle by candle.

A running bot on a user strategy cannot start an interpreter per tick (numpy and
pandas alone take about a second), so a ``SandboxSession`` keeps one locked-down
sandbox process (``worker.py``, "session" mode) with the strategy loaded and asks
it one step per closed candle: the signals of the last candle, or an event
strategy's ``initialize``/``on_fill``/``on_data``. The process, its lockdown and
its limits are the backtests' (``runner.py``): the same policy, the same memory
limit, and per step the CPU-time and wall-clock limits a whole backtest gets.

An event strategy's broker calls come back here as ``call`` messages and are
answered by the caller's broker (the bot's ``GatewayBroker``), so order ids and
sizes are decided by the same code as for a built-in; the arguments are checked
first, because the sender runs untrusted code. Its state travels as the JSON of
``strategies/state.py``: given to a step, returned by it (``dump``), never decoded
here. Any failure closes the session; the next step starts a new process.

``SessionPool`` keeps the sessions of one worker process keyed by bot, bounded
(least recently used out) and closed when idle.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from apps.backtests.engine.candles import Candles
from apps.backtests.engine.errors import BacktestError

from .errors import SandboxCrash, SandboxTimeout
from .protocol import ProtocolError, encode, read_message
from .runner import _BOOT, _CHILD_ENV, _POLL_SECONDS, _REPO_ROOT, SandboxLimits, died, raise_for_error
from .runner import validate_or_raise as _validate

KEEP = object()  # ``event(state=KEEP)``: continue the object the process kept from the last step
MAX_STATE_BYTES = 1024 * 1024
_MAX_STDERR = 64 * 1024
_SIGNALS = frozenset({"long_entries", "long_exits", "short_entries", "short_exits"})
# The broker calls a strategy may make, with the keywords each takes (``history`` is answered
# in the sandbox from the step's candles).
CALLS: dict[str, frozenset[str]] = {
    "market": frozenset({"leverage", "stop_loss", "take_profit", "trailing_stop"}),
    **{
        name: frozenset()
        for name in (
            "close_position",
            "limit",
            "stop_market",
            "stop_limit",
            "take_profit",
            "trailing_stop",
            "cancel",
            "cancel_all",
            "open_orders",
            "position_size",
            "cash",
            "equity",
            "margin_ratio",
            "entry_price",
            "liquidation_price",
        )
    },
}


def _window(data: Candles) -> dict[str, np.ndarray]:
    return {name: getattr(data, name) for name in ("timestamp", "open", "high", "low", "close", "volume")}


def _scalar(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, (bool, int, str))
        or (isinstance(value, float) and math.isfinite(value))
    )


def answer_call(broker: Any, call: dict[str, Any]) -> dict[str, Any]:
    """The ``answer`` to a sandbox's broker ``call`` (checked: the sandbox is not trusted)."""
    method, args, kwargs = call.get("method"), call.get("args"), call.get("kwargs")
    if (
        method not in CALLS
        or not isinstance(args, list)
        or not isinstance(kwargs, dict)
        or len(args) > 4
        or set(kwargs) - CALLS[method]
        or not all(_scalar(v) for v in (*args, *kwargs.values()))
    ):
        return {"type": "answer", "error": f"the broker has no call {method!r} with these arguments"}
    try:
        value = getattr(broker, method)(*args, **kwargs)
    except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
        return {"type": "answer", "error": f"{method}: {exc}"}
    if method == "open_orders":
        value = [dataclasses.asdict(order) for order in value]
    return {"type": "answer", "value": value}


class SandboxSession:
    """One sandbox process with one user strategy loaded (see the module docstring).

    Starting raises what a backtest would (``CodeValidationError``, ``ParamError``,
    ``StrategyError`` when the module or the constructor fails, ``SandboxTimeout``...).
    ``start_seconds`` is what the start cost.
    """

    def __init__(self, source: str, params: dict[str, Any] | None, *, limits: SandboxLimits | None = None):
        _validate(source)
        self.limits = limits or SandboxLimits()
        started = time.monotonic()
        self._lock = threading.Lock()
        self._messages: queue.Queue[tuple[dict[str, Any], dict[str, np.ndarray]] | None] = queue.Queue()
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._stderr = b""
        self.closed = False
        self.steps = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, _REPO_ROOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_CHILD_ENV,
            cwd="/",
            close_fds=True,
            start_new_session=True,
            bufsize=0,
        )
        self._threads = [
            threading.Thread(target=target, daemon=True, name=f"sandbox-{self.proc.pid}-{target.__name__}")
            for target in (self._write, self._read, self._read_stderr)
        ]
        for thread in self._threads:
            thread.start()
        header = {"task": "session", "source": source, "params": dict(params or {})}
        ready = self._request({**header, "limits": self.limits.to_dict()}, {}, expect="ready")
        self.style = "event" if ready.get("style") == "event" else "signal"
        self.start_seconds = time.monotonic() - started

    # ------------------------------------------------------------------ pipes
    def _write(self) -> None:
        fd = self.proc.stdin.fileno()  # type: ignore[union-attr]
        while (payload := self._outbox.get()) is not None:
            view = memoryview(payload)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                return  # the child died; the reader reports why

    def _read(self) -> None:
        try:
            while (message := read_message(self.proc.stdout)) is not None:  # type: ignore[arg-type]
                self._messages.put(message)
        except (ProtocolError, OSError, ValueError):
            pass  # a garbled stream is a dead session: the request reports the exit
        finally:
            self._messages.put(None)

    def _read_stderr(self) -> None:
        while chunk := self.proc.stderr.read(4096):  # type: ignore[union-attr]
            self._stderr = (self._stderr + chunk)[-_MAX_STDERR:]

    @property
    def alive(self) -> bool:
        return not self.closed and self.proc.poll() is None

    def close(self) -> None:
        """Kill the process (idempotent)."""
        self.closed = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._outbox.put(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass

    # --------------------------------------------------------------- requests
    def _request(
        self,
        header: dict[str, Any],
        arrays: dict[str, np.ndarray],
        *,
        expect: str = "result",
        broker: Any = None,
    ) -> dict[str, Any]:
        """Send one request and wait for its reply, answering broker calls meanwhile.

        Any failure kills the process: its state is unknown after it.
        """
        with self._lock:
            if self.closed:
                raise SandboxCrash("the sandbox session is closed")
            try:
                return self._exchange(header, arrays, expect, broker)
            except BaseException:
                self.close()
                raise

    def _exchange(
        self, header: dict[str, Any], arrays: dict[str, np.ndarray], expect: str, broker: Any
    ) -> dict[str, Any]:
        limits = self.limits
        deadline = time.monotonic() + float(limits.wall_seconds)
        self._outbox.put(encode(header, arrays))
        while True:
            try:
                message = self._messages.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise SandboxTimeout(
                        f"the strategy exceeded the wall-clock limit of {limits.wall_seconds:g} s "
                        "and was stopped"
                    ) from None
                continue
            if message is None:
                try:
                    returncode = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    raise SandboxCrash("the sandbox process stopped answering") from None
                for thread in self._threads[2:]:
                    thread.join(timeout=1)  # the last words on stderr
                raise died(returncode, self._stderr, limits)
            reply, _ = message
            kind = reply.get("type")
            if kind == "call" and broker is not None:
                self._outbox.put(encode(answer_call(broker, reply)))
            elif kind == "error":
                raise_for_error(reply)
            elif kind == expect:
                self.logs = reply.get("logs") if isinstance(reply.get("logs"), str) else ""
                return reply
            else:
                raise SandboxCrash(f"the sandbox sent an unexpected {kind!r} message")
            if time.monotonic() > deadline:
                raise SandboxTimeout(
                    f"the strategy exceeded the wall-clock limit of {limits.wall_seconds:g} s and was stopped"
                )

    # ------------------------------------------------------------------ steps
    def signals(self, data: Candles) -> dict[str, Any]:
        """What the signal strategy says on the last candle of ``data``:
        ``{"signals": [...], "stop_loss": f|None, "take_profit": f|None}`` (``stepping.signal_flags``)."""
        reply = self._request({"type": "step"}, _window(data))
        self.steps += 1
        flags = reply.get("flags")
        try:
            names = flags["signals"]
            if not (isinstance(names, list) and set(names) <= _SIGNALS):
                raise TypeError
            fractions = {k: flags.get(k) for k in ("stop_loss", "take_profit")}
            if not all(
                v is None or (isinstance(v, (int, float)) and math.isfinite(v)) for v in fractions.values()
            ):
                raise TypeError
        except (TypeError, KeyError) as exc:
            self.close()
            raise SandboxCrash("the sandbox returned malformed signals") from exc
        return {"signals": list(names), **fractions}

    def event(
        self,
        data: Candles,
        broker: Any,
        *,
        index: int,
        fresh: bool,
        state: Any = KEEP,
        fills: list[Any] = (),  # type: ignore[assignment]
        dump: bool = False,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Step the event strategy on the last candle of ``data`` (``stepping.event_step``).

        ``state``: the JSON attributes a previous step returned (``None`` with ``fresh``: a new
        strategy), or ``KEEP`` to continue the object the process holds (a replay).
        ``fills``: ``OrderInfo`` of its orders that filled since. ``dump``: return the state.
        Returns what the strategy was told and the state (``None`` unless ``dump``).
        """
        header: dict[str, Any] = {
            "type": "step",
            "index": int(index),
            "fresh": bool(fresh),
            "fills": [dataclasses.asdict(fill) for fill in fills],
            "dump": bool(dump),
        }
        if state is not KEEP:
            header["state"] = state
        reply = self._request(header, _window(data), broker=broker)
        self.steps += 1
        told, attrs = reply.get("told"), reply.get("attrs")
        malformed = not (isinstance(told, list) and all(isinstance(t, str) for t in told))
        if dump:
            malformed = malformed or not isinstance(attrs, dict)
            if not malformed and len(json.dumps(attrs)) > MAX_STATE_BYTES:
                self.close()
                raise BacktestError(
                    f"the strategy's state is larger than {MAX_STATE_BYTES // 1024} KB; keep less between candles"
                )
        if malformed:
            self.close()
            raise SandboxCrash("the sandbox returned a malformed step")
        return told, attrs if dump else None


class _Entry:
    __slots__ = ("fingerprint", "last_used", "lock", "session")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: SandboxSession | None = None
        self.fingerprint: Any = None
        self.last_used = time.monotonic()


class SessionPool:
    """The sandbox sessions of one process, one per key (a bot), LRU-bounded and closed when idle.

    ``session(key, fingerprint, start)`` lends the key's session, starting one with
    ``start()`` when there is none, when it died or when ``fingerprint`` (code and
    parameters) changed; a failure inside the block closes it, so the next use starts
    afresh. One user at a time per key. Thread-safe (the embedded worker is a thread pool).
    """

    def __init__(self, *, max_sessions: int = 8, idle_seconds: float = 600.0) -> None:
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.started = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[Any, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return sum(1 for entry in list(self._entries.values()) if entry.session is not None)

    @contextmanager
    def session(
        self, key: Any, fingerprint: Any, start: Callable[[], SandboxSession]
    ) -> Iterator[SandboxSession]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            self._entries.move_to_end(key)
        with entry.lock:
            try:
                session = entry.session
                if session is None or not session.alive or entry.fingerprint != fingerprint:
                    if session is not None:
                        session.close()
                    entry.session, entry.fingerprint = None, fingerprint
                    session = entry.session = start()
                    self.started += 1
                yield session
            except BaseException:
                if entry.session is not None:
                    entry.session.close()
                    entry.session = None
                raise
            finally:
                entry.last_used = time.monotonic()
        self.evict()

    def discard(self, key: Any) -> None:
        """Close the key's session (a stopped bot)."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None:
            with entry.lock:
                if entry.session is not None:
                    entry.session.close()
                    entry.session = None

    def evict(self) -> None:
        """Close sessions idle for longer than ``idle_seconds`` and the least recently used
        ones beyond ``max_sessions`` (never one in use)."""
        now = time.monotonic()
        closing = []
        with self._lock:
            live = [e for e in self._entries.values() if e.session is not None]
            excess = len(live) - self.max_sessions
            for entry in live:  # least recently used first
                if not (excess > 0 or now - entry.last_used > self.idle_seconds):
                    continue
                if not entry.lock.acquire(blocking=False):
                    continue  # in use
                # The entry stays (a few bytes per key): a thread may hold it already.
                closing.append(entry.session)
                entry.session = None
                entry.lock.release()
                excess -= 1
        for session in closing:
            session.close()

    def clear(self) -> None:
        """Close every session."""
        with self._lock:
            keys = list(self._entries)
        for key in keys:
            self.discard(key)
