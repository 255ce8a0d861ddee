"""The sandbox process: runs one user strategy job and reports over a pipe.

Started by ``runner.py`` as ``python -I -c <boot> <repo root>`` with a clean
environment. Order matters:

1. keep a private copy of stdout as the reply channel and point fd 1 at stderr,
   so nothing printed by user code or a library can corrupt replies;
2. read the job (candles, source, params, config) from stdin;
3. import everything the job may need and warm up the engine, because once
   locked down the process can no longer open files (imports open files);
4. lock down: no new file descriptors (files, sockets, pipes), no sockets at the
   Python level, an unprivileged user when started as root, no child processes,
   no file writes, CPU-time and address-space limits;
5. execute the user code with restricted builtins and a guarded ``__import__``
   and run the job, replying with a result or an error with its line number.

A "session" job (a running bot, ``session.py``) keeps stdin open as its request
pipe: the process loads the strategy once, answers ``ready``, then steps it once
per request (``stepping.py``: signals on the last candle, or an event strategy's
``initialize``/``on_fill``/``on_data``) with a fresh CPU-time budget per step. An
event strategy's broker calls go to the parent as ``call`` messages and wait for
its ``answer``, so the bot's real broker decides ids and sizes; ``history`` is
answered here from the step's candle window. After an error the process exits.
"""

from __future__ import annotations

import os
import resource
import sys
import traceback
from typing import Any

import numpy as np

from apps.backtests.strategies import USER_FILENAME

from . import policy
from .protocol import read_message, write_message
from .transfer import result_to_message

MAX_LOG_CHARS = 20_000
_NOBODY = 65534
# Broker calls one step may make (a strategy looping over ``buy`` would flood the parent).
MAX_CALLS_PER_STEP = 10_000


class _Violation(Exception):
    """Raised inside the sandbox by the runtime guards."""


# --------------------------------------------------------------------------- replies


class _Channel:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.last_progress = -1.0

    def send(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        write_message(self.fd, header, arrays)

    def progress(self, fraction: float) -> None:
        # The engine calls this about 100 times; forward only visible changes.
        if fraction - self.last_progress >= 0.01 or fraction >= 1.0:
            self.last_progress = fraction
            self.send({"type": "progress", "value": float(fraction)})


# --------------------------------------------------------------------------- user namespace


class _Log:
    """``print`` for user code: captured (bounded) and returned with the result."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def print(self, *args: Any, sep: str = " ", end: str = "\n", **_: Any) -> None:
        if self.size >= MAX_LOG_CHARS:
            return
        text = sep.join(str(a) for a in args) + end
        text = text[: MAX_LOG_CHARS - self.size]
        self.parts.append(text)
        self.size += len(text)

    def text(self) -> str:
        return "".join(self.parts)

    def clear(self) -> None:
        self.parts, self.size = [], 0


def _guarded_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Any:
    if level:
        raise _Violation("relative imports are not allowed")
    problem = policy.module_problem(name)
    if problem:
        raise _Violation(problem)
    for item in fromlist or ():
        if item == "*" or policy.attribute_problem(str(item)):
            raise _Violation(f"importing '{item}' from '{name}' is not allowed")
    return __import__(name, None, None, fromlist or (), 0)


def _refusal(message: str) -> Any:
    def refused(*_: Any, **__: Any) -> Any:
        raise _Violation(message)

    return refused


def _safe_builtins(log: _Log) -> dict[str, Any]:
    import builtins

    safe: dict[str, Any] = {}
    # Refused names exist as stubs that explain themselves (instead of a NameError).
    for name, reason in policy.BANNED_NAMES.items():
        safe[name] = _refusal(f"'{name}': {reason}")
    safe.update({name: getattr(builtins, name) for name in policy.SAFE_BUILTINS})
    safe["print"] = log.print
    safe["__import__"] = _guarded_import
    # Needed by the compiler for class statements.
    safe["__build_class__"] = builtins.__build_class__
    return safe


def _user_namespace(log: _Log) -> dict[str, Any]:
    from apps.backtests.engine import Param, Signals, SignalStrategy, Strategy
    from apps.backtests.strategies import indicators

    namespace: dict[str, Any] = {
        "__builtins__": _safe_builtins(log),
        "__name__": "user_strategy",
    }
    provided = {
        "Strategy": Strategy,
        "SignalStrategy": SignalStrategy,
        "Param": Param,
        "Signals": Signals,
        "indicators": indicators,
    }
    namespace.update({name: provided[name] for name in policy.PROVIDED_NAMES})
    return namespace


def _find_strategy_class(namespace: dict[str, Any]) -> type:
    from apps.backtests.engine import SignalStrategy, Strategy

    found = [
        value
        for value in namespace.values()
        if isinstance(value, type)
        and issubclass(value, (Strategy, SignalStrategy))
        and value not in (Strategy, SignalStrategy)
        and value.__module__ == "user_strategy"
    ]
    if len(found) != 1:
        raise _Violation("define exactly one class deriving from Strategy or SignalStrategy")
    return found[0]


# --------------------------------------------------------------------------- lockdown


def _preload() -> None:
    """Import and exercise what a job may touch, while files can still be opened."""
    import bisect  # noqa: F401
    import collections  # noqa: F401
    import datetime  # noqa: F401
    import decimal  # noqa: F401
    import fractions  # noqa: F401
    import functools  # noqa: F401
    import heapq  # noqa: F401
    import itertools  # noqa: F401
    import math  # noqa: F401
    import random  # noqa: F401
    import socket  # noqa: F401 - patched by _block_sockets before user code runs
    import statistics  # noqa: F401

    import pandas as pd

    from apps.backtests.strategies import lookahead  # noqa: F401
    from apps.backtests.strategies.registry import warm_up

    for name in policy.ALLOWED_MODULES:
        __import__(name)
    # Common numpy/pandas paths import submodules lazily on first use.
    series = pd.Series(np.linspace(1.0, 2.0, 64))
    series.rolling(5).mean()
    series.rolling(5).std()
    series.rolling(5).max()
    series.ewm(span=5).mean()
    series.diff().shift(1).pct_change()
    pd.DataFrame({"a": series}).describe()
    np.random.default_rng(0).random(4)
    str(pd.Timestamp(0, unit="ms", tz="UTC"))
    warm_up()


def _block_sockets() -> None:
    import socket

    def refused(*_: Any, **__: Any) -> Any:
        raise _Violation("network access is not allowed in strategy code")

    for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
        if hasattr(socket, name):
            setattr(socket, name, refused)


def _dense_fds(keep: int, *, keep_stdin: bool = False) -> int:
    """Close every fd except 0-2 and ``keep``; move ``keep`` to 3. Returns 3.

    ``keep_stdin``: stdin stays the request pipe (a session); otherwise it becomes /dev/null.
    """
    if not keep_stdin:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
    if keep != 3:
        os.dup2(keep, 3)
    os.set_inheritable(3, False)
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        if fd > 3:
            try:
                os.close(fd)
            except OSError:
                pass
    return 3


def _lock_down(limits: dict[str, Any], *, session: bool = False) -> None:
    _block_sockets()
    if os.geteuid() == 0:
        # Root could raise its own rlimits back; an unprivileged user cannot.
        # (A container without CAP_SETUID refuses; the other limits still apply.)
        try:
            os.setgroups([])
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
        except OSError:
            pass
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime + float(limits["cpu_seconds"])) + 1
    memory = int(limits["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A session gets a fresh budget per step (``_cpu_budget``): a soft limit may only be raised
    # up to the hard one, so the hard one stays open and the parent's per-step wall-clock
    # deadline is the backstop that kills a process ignoring SIGXCPU.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY if session else cpu + 2))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    # fds 0-3 are open, so with a limit of 4 no new descriptor can exist:
    # open(), socket(), pipe() and accept() all fail with EMFILE.
    resource.setrlimit(resource.RLIMIT_NOFILE, (4, 4))


def _cpu_budget(seconds: float) -> None:
    """SIGXCPU once this process has used ``seconds`` more CPU time than now (one session step)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(used.ru_utime + used.ru_stime + float(seconds)) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))


# --------------------------------------------------------------------------- errors


def _user_line(exc: BaseException) -> int | None:
    """The innermost line of user code in the traceback of ``exc`` or its causes.

    Only frames compiled from the user's source count: the engine's own guess
    (``StrategyError.line``) may point into a library the strategy called.
    """
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = None
        for frame, lineno in traceback.walk_tb(current.__traceback__):
            if frame.f_code.co_filename == USER_FILENAME:
                found = lineno
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _clear_frames(exc: BaseException) -> None:
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            break
        try:
            traceback.clear_frames(current.__traceback__)
        except RuntimeError:
            pass  # a frame still executing (ours); nothing to free there
        current = current.__cause__ or current.__context__


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _classify(exc: BaseException) -> dict[str, Any]:
    from apps.backtests.engine.errors import BacktestError, ParamError, StrategyError

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    line = _user_line(exc)
    for item in chain:
        if isinstance(item, MemoryError):
            return {"kind": "memory", "message": "the strategy ran out of memory", "line": line}
        if isinstance(item, _Violation):
            return {"kind": "violation", "message": str(item), "line": line}
        if isinstance(item, RecursionError):
            return {
                "kind": "strategy",
                "message": "RecursionError: maximum recursion depth exceeded",
                "line": line,
            }
        if isinstance(item, OSError) and item.errno in (24, 13, 1):  # EMFILE, EACCES, EPERM
            return {
                "kind": "violation",
                "message": "file, network and process access are not allowed in strategy code",
                "line": line,
            }
    if isinstance(exc, ParamError):
        return {"kind": "params", "message": str(exc), "fields": exc.fields}
    if isinstance(exc, StrategyError):
        cause = exc.__cause__ or exc.__context__
        message = exc.message if cause is None else _describe(cause)
        return {"kind": "strategy", "message": message, "line": line}
    if isinstance(exc, BacktestError) and line is None:
        return {"kind": "backtest", "message": str(exc)}
    return {"kind": "strategy", "message": _describe(exc), "line": line}


# --------------------------------------------------------------------------- jobs


def _run_job(header: dict[str, Any], arrays: dict[str, np.ndarray], channel: _Channel, log: _Log) -> None:
    from apps.backtests.engine import BacktestConfig, Candles, run_backtest
    from apps.backtests.engine.candles import MARK_COLUMNS
    from apps.backtests.engine.params import schema_to_json
    from apps.backtests.strategies.lookahead import check_lookahead

    code = compile(header["source"], USER_FILENAME, "exec", dont_inherit=True)
    namespace = _user_namespace(log)
    exec(code, namespace)  # noqa: S102 - the whole point: restricted namespace, locked-down process
    cls = _find_strategy_class(namespace)
    task = header["task"]
    if task == "describe":
        style = "event" if _is_event(cls) else "signal"
        channel.send(
            {
                "type": "result",
                "name": str(getattr(cls, "name", "") or cls.__name__),
                "description": str(getattr(cls, "description", "") or ""),
                "style": style,
                "params": schema_to_json(getattr(cls, "params", {}) or {}),
            }
        )
        return
    candles = Candles.from_arrays(
        *(arrays[c] for c in ("timestamp", "open", "high", "low", "close", "volume"))
    )
    if "mark_close" in arrays:
        mark = Candles.from_arrays(arrays["timestamp"], *(arrays[f"mark_{c}"] for c in MARK_COLUMNS))
        candles = candles.with_mark(mark)
    params = header.get("params") or {}
    strategy = cls(**params)
    if task == "lookahead":
        report = check_lookahead(lambda: cls(**params), candles, **(header.get("options") or {}))
        channel.send({"type": "result", "report": report.to_dict(), "logs": log.text()})
        return
    config = BacktestConfig.from_dict(header["config"])
    result = run_backtest(candles, strategy, config, progress=channel.progress)
    result_header, result_arrays = result_to_message(result)
    channel.send({"type": "result", **result_header, "logs": log.text()}, result_arrays)


# --------------------------------------------------------------------------- sessions


class _Session:
    """A loaded user strategy stepped once per request (see the module docstring)."""

    def __init__(self, header: dict[str, Any], channel: _Channel, requests: Any, log: _Log) -> None:
        self.code = compile(header["source"], USER_FILENAME, "exec", dont_inherit=True)
        self.params = dict(header.get("params") or {})
        self.cpu_seconds = float(header["limits"]["cpu_seconds"])
        self.channel, self.requests = channel, requests
        self.log = log
        self.cls = self._load()
        self.cls(**self.params)  # bad parameters fail the start, not the first step
        self.kept: Any = None  # the object of a caller that steps one object (a replay)

    def _load(self) -> type:
        """The strategy class from a fresh module namespace.

        Every step that restores a saved state runs the module again, so nothing the code
        kept in module globals or class attributes outlives a step: the saved state is all
        that carries over, in this process or in another one.
        """
        namespace = _user_namespace(self.log)
        exec(self.code, namespace)  # noqa: S102 - restricted namespace, locked-down process
        return _find_strategy_class(namespace)

    def ready(self) -> dict[str, Any]:
        return {"type": "ready", "style": "event" if _is_event(self.cls) else "signal"}

    def step(self, request: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        from apps.backtests.engine import Candles, OrderInfo
        from apps.backtests.strategies.state import attrs_dump, attrs_load
        from apps.backtests.strategies.stepping import event_step, signal_flags

        self.log.clear()
        data = Candles.from_arrays(
            *(np.array(arrays[c]) for c in ("timestamp", "open", "high", "low", "close", "volume"))
        )
        if not _is_event(self.cls):
            strategy = self.cls(**self.params)
            return {"type": "result", "flags": signal_flags(strategy, data)}
        if "state" in request:
            state = request["state"]
            cls = self._load()
            strategy = cls(**self.params)
            if state is not None:
                attrs_load(strategy, state)
        elif self.kept is not None:
            strategy = self.kept
        else:
            raise ValueError("no strategy to continue: the first step needs a state")
        self.kept = strategy
        fills = [OrderInfo(**fill) for fill in request.get("fills") or []]
        told = event_step(
            strategy,
            data,
            _RemoteBroker(self.channel, self.requests, data),
            index=int(request["index"]),
            fresh=bool(request.get("fresh")),
            fills=fills,
        )
        reply: dict[str, Any] = {"type": "result", "told": told}
        if request.get("dump"):
            reply["attrs"] = attrs_dump(strategy)
        return reply


class BrokerError(Exception):
    """The parent's broker refused a call (bad arguments)."""


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"broker arguments must be numbers or strings, not {type(value).__name__}")


class _RemoteBroker:
    """The engine's ``Broker`` protocol for a sandboxed strategy: calls go to the parent's broker.

    Only ``history`` is answered here, from the step's window (copies that end at the
    current candle, as ``GatewayBroker.history``).
    """

    def __init__(self, channel: _Channel, requests: Any, data: Any) -> None:
        self._channel, self._requests, self._data = channel, requests, data
        self._calls = 0

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._calls += 1
        if self._calls > MAX_CALLS_PER_STEP:
            raise _Violation(f"more than {MAX_CALLS_PER_STEP} broker calls in one candle")
        self._channel.send(
            {
                "type": "call",
                "method": method,
                "args": [_plain(a) for a in args],
                "kwargs": {k: _plain(v) for k, v in kwargs.items()},
            }
        )
        message = read_message(self._requests)
        if message is None or message[0].get("type") != "answer":
            raise SystemExit(5)  # the parent went away or broke the protocol
        answer = message[0]
        if "error" in answer:
            raise BrokerError(str(answer["error"]))
        return answer.get("value")

    def history(self, n: int) -> Any:
        from apps.backtests.engine import History

        hi = len(self._data)
        return History(self._data, max(0, hi - int(n)), hi)

    def open_orders(self) -> list[Any]:
        from apps.backtests.engine import OrderInfo

        return [OrderInfo(**order) for order in self._call("open_orders")]

    def __getattr__(self, name: str) -> Any:
        # The protocol's other methods: each one a call to the parent's broker.
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, *args, **kwargs)

        return call


def _serve(header: dict[str, Any], channel: _Channel, requests: Any, log: _Log) -> None:
    """A session's life: load, answer ``ready``, then one reply per step until stdin closes."""
    session = _Session(header, channel, requests, log)
    channel.send(session.ready())
    while True:
        message = read_message(requests)
        if message is None:
            return
        request, arrays = message
        if request.get("type") != "step":
            raise _Violation("unknown request")
        _cpu_budget(session.cpu_seconds)
        reply = session.step(request, arrays)
        channel.send({**reply, "logs": session.log.text()})


def _is_event(cls: type) -> bool:
    from apps.backtests.engine import Strategy

    return issubclass(cls, Strategy)


def main() -> None:
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    channel = _Channel(reply_fd)
    stdin = os.fdopen(0, "rb", buffering=1 << 20, closefd=False)
    try:
        message = read_message(stdin)
        if message is None:
            return
        header, arrays = message
        # Own copies: the buffers are read-only views of the received bytes.
        arrays = {name: np.array(values) for name, values in arrays.items()}
        session = header.get("task") == "session"
        _preload()
        if session:
            from apps.backtests.strategies import state, stepping  # noqa: F401 - before the lockdown
        channel.fd = _dense_fds(reply_fd, keep_stdin=session)
        _lock_down(header["limits"], session=session)
    except BaseException as exc:
        channel.send(
            {"type": "error", "kind": "internal", "message": f"sandbox set-up failed: {_describe(exc)}"}
        )
        raise SystemExit(3) from exc
    log = _Log()
    try:
        if session:
            _serve(header, channel, stdin, log)
        else:
            _run_job(header, arrays, channel, log)
    except BaseException as exc:
        try:
            # For operators: the runner keeps the (bounded) stderr for its logs.
            traceback.print_exception(exc, file=sys.stderr)
        except BaseException:  # noqa: S110 - best effort only
            pass
        try:
            reply = _classify(exc)
        except BaseException:
            reply = {"kind": "strategy", "message": type(exc).__name__}
        # Free what the failed code still holds through its frames (a memory
        # bomb's list, say), so there is room to send the reply.
        _clear_frames(exc)
        try:
            channel.send({"type": "error", **reply, "logs": log.text()})
        except BaseException:
            os._exit(4)
    # Skip interpreter teardown: nothing to flush, and user objects' finalizers must not run.
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover - started by runner.py
    main()
