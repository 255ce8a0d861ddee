"""Run user strategy code in a separate, locked-down OS process.

The calling process (web, Celery worker, CLI) never executes user code. It starts
a fresh interpreter (``subprocess``, not ``fork``: a forked child would inherit
database connections, sockets and secrets in memory), sends it the job over
stdin, and reads progress and the reply over stdout with a wall-clock deadline.
The reply is parsed without pickle, so a compromised sandbox cannot run code
here. See docs/sandbox.md for the threat model.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.backtests.engine.errors import BacktestCancelled, BacktestError, ParamError, StrategyError

from .errors import CodeValidationError, SandboxCrash, SandboxMemoryError, SandboxTimeout, SandboxViolation
from .protocol import ProtocolError, encode, read_message
from .validation import validate_code

_REPO_ROOT = str(Path(__file__).resolve().parents[4])
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from apps.backtests.strategies.sandbox.worker import main; main()"
)
# The child gets a clean environment: no secrets (DATABASE_URL, API keys) and
# single-threaded numeric libraries (threads would count against the limits).
_CHILD_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
_MAX_STDERR = 64 * 1024
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run.

    ``cpu_seconds`` counts CPU time of the user job (interpreter start-up is not
    charged), ``memory_mb`` is the address-space limit of the whole sandbox
    process (numpy and pandas alone take about 300 MB of it), ``wall_seconds``
    is the real time from start to reply, start-up included.
    """

    cpu_seconds: float = 60.0
    memory_mb: int = 1536
    wall_seconds: float = 120.0

    def to_dict(self) -> dict[str, float]:
        return {
            "cpu_seconds": float(self.cpu_seconds),
            "memory_mb": int(self.memory_mb),
            "wall_seconds": float(self.wall_seconds),
        }


def _candle_arrays(data: Any) -> dict[str, np.ndarray]:
    from apps.backtests.engine import Candles
    from apps.backtests.engine.candles import MARK_COLUMNS, to_candles

    candles: Candles = to_candles(data)
    arrays = {
        name: getattr(candles, name) for name in ("timestamp", "open", "high", "low", "close", "volume")
    }
    if candles.mark is not None:
        arrays.update({f"mark_{name}": getattr(candles.mark, name) for name in MARK_COLUMNS})
    return arrays


class _Session:
    """One sandbox process: feed it a job, collect messages until it ends."""

    def __init__(self, payload: bytes, limits: SandboxLimits) -> None:
        self.limits = limits
        self.messages: queue.Queue[tuple[dict[str, Any], dict[str, np.ndarray]] | None] = queue.Queue()
        self.stderr = bytearray()
        self.protocol_error: str | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, _REPO_ROOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_CHILD_ENV,
            cwd="/",
            close_fds=True,
            start_new_session=True,
        )
        self._threads = [
            threading.Thread(target=self._write, args=(payload,), daemon=True),
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _write(self, payload: bytes) -> None:
        try:
            self.proc.stdin.write(payload)  # type: ignore[union-attr]
            self.proc.stdin.close()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError, ValueError):
            pass  # the child died early; its exit status tells why

    def _read(self) -> None:
        try:
            while True:
                message = read_message(self.proc.stdout)  # type: ignore[arg-type]
                if message is None:
                    break
                self.messages.put(message)
        except (ProtocolError, OSError, ValueError) as exc:
            self.protocol_error = str(exc)
        finally:
            self.messages.put(None)

    def _read_stderr(self) -> None:
        stream = self.proc.stderr
        while True:
            chunk = stream.read(4096)  # type: ignore[union-attr]
            if not chunk:
                break
            if len(self.stderr) < _MAX_STDERR:
                self.stderr += chunk[: _MAX_STDERR - len(self.stderr)]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        self.kill()
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass


def raise_for_error(reply: dict[str, Any]) -> None:
    kind = reply.get("kind")
    message = str(reply.get("message") or "the strategy failed")
    line = reply.get("line") if isinstance(reply.get("line"), int) else None
    if kind == "memory":
        raise SandboxMemoryError(f"{message} (line {line})" if line else message)
    if kind == "violation":
        raise SandboxViolation(message, line)
    if kind == "params":
        fields = reply.get("fields")
        if isinstance(fields, dict):
            raise ParamError({str(k): str(v) for k, v in fields.items()})
        raise BacktestError(message)
    if kind == "backtest":
        raise BacktestError(message)
    if kind == "internal":
        raise SandboxCrash(message)
    raise StrategyError(message, line)


def _run(
    header: dict[str, Any],
    arrays: dict[str, np.ndarray],
    limits: SandboxLimits,
    *,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    payload = encode({**header, "limits": limits.to_dict()}, arrays)
    started = time.monotonic()
    deadline = started + float(limits.wall_seconds)
    session = _Session(payload, limits)
    try:
        while True:
            try:
                message = session.messages.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                message = ...  # nothing new: only check the clock and the cancel flag
            if should_cancel is not None and should_cancel():
                raise BacktestCancelled("backtest cancelled")
            if time.monotonic() > deadline:
                raise SandboxTimeout(
                    f"the strategy exceeded the wall-clock limit of {limits.wall_seconds:g} s and was stopped"
                )
            if message is ...:
                continue
            if message is None:
                break
            reply, reply_arrays = message
            kind = reply.get("type")
            if kind == "progress":
                if progress is not None:
                    progress(min(max(float(reply.get("value", 0.0)), 0.0), 1.0))
            elif kind == "result":
                return reply, reply_arrays
            elif kind == "error":
                raise_for_error(reply)
        # The stream ended without a reply: the process died. Find out why.
        raise died(session.proc.wait(timeout=5), bytes(session.stderr), limits)
    finally:
        session.close()


def died(returncode: int, stderr: bytes, limits: SandboxLimits) -> BacktestError:
    """The error to report for a sandbox process that ended with ``returncode`` and no reply."""
    if returncode == -signal.SIGXCPU:
        return SandboxTimeout(
            f"the strategy exceeded the CPU-time limit of {limits.cpu_seconds:g} s and was stopped"
        )
    if returncode == -signal.SIGKILL:
        return SandboxCrash("the sandbox process was killed (CPU-time or memory limit reached)")
    detail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
    return SandboxCrash(
        f"the sandbox process ended unexpectedly (exit status {returncode})"
        + (f": {' | '.join(detail)}" if detail else "")
    )


def validate_or_raise(source: str) -> None:
    """Raise ``CodeValidationError`` unless ``validate_code`` accepts ``source``."""
    issues = validate_code(source)
    if issues:
        raise CodeValidationError(issues)


def run_user_backtest(
    source: str,
    data: Any,
    params: dict[str, Any] | None,
    config: Any,
    *,
    limits: SandboxLimits | None = None,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Any:
    """Validate and backtest user strategy code in a sandbox process.

    ``data`` is a candle DataFrame or ``Candles``, ``config`` a ``BacktestConfig``
    (or its dict). Returns a ``BacktestResult`` rebuilt from the sandbox reply; its
    ``logs`` attribute holds what the strategy printed. Raises
    ``CodeValidationError`` (refused before running), ``ParamError``,
    ``StrategyError`` (the code raised; ``line`` is the user's line),
    ``SandboxViolation``, ``SandboxTimeout``, ``SandboxMemoryError``,
    ``SandboxCrash`` or ``BacktestCancelled``.
    """
    from apps.backtests.engine import BacktestConfig

    from .transfer import message_to_result

    validate_or_raise(source)
    if isinstance(config, BacktestConfig):
        config_dict = config.to_dict()
    else:
        config_dict = BacktestConfig.from_dict(dict(config or {})).to_dict()
    header = {"task": "backtest", "source": source, "params": dict(params or {}), "config": config_dict}
    reply, arrays = _run(
        header,
        _candle_arrays(data),
        limits or SandboxLimits(),
        progress=progress,
        should_cancel=should_cancel,
    )
    try:
        return message_to_result(reply, arrays)
    except ProtocolError as exc:
        raise SandboxCrash(f"the sandbox returned a malformed result ({exc})") from exc


def run_user_lookahead(
    source: str,
    data: Any,
    params: dict[str, Any] | None = None,
    *,
    limits: SandboxLimits | None = None,
    should_cancel: Callable[[], bool] | None = None,
    **options: Any,
) -> Any:
    """Run ``check_lookahead`` on user code inside the sandbox; returns a ``LookaheadReport``.

    ``options`` go to ``check_lookahead``; its time budget defaults to three
    quarters of the sandbox's CPU and wall-clock limits, so the check reports
    what it covered instead of being killed.
    """
    from apps.backtests.strategies.lookahead import LookaheadReport

    validate_or_raise(source)
    limits = limits or SandboxLimits()
    budget = 0.75 * min(float(limits.cpu_seconds), float(limits.wall_seconds))
    options["max_seconds"] = min(float(options.get("max_seconds") or budget), budget)
    header = {"task": "lookahead", "source": source, "params": dict(params or {}), "options": options}
    reply, _ = _run(header, _candle_arrays(data), limits, should_cancel=should_cancel)
    return LookaheadReport.from_dict(reply["report"])


def describe_user_strategy(source: str, *, limits: SandboxLimits | None = None) -> dict[str, Any]:
    """Name, description, style ("signal"|"event") and JSON parameter schema of user code.

    The class body is user code, so this also runs in the sandbox.
    """
    validate_or_raise(source)
    reply, _ = _run({"task": "describe", "source": source}, {}, limits or SandboxLimits(cpu_seconds=10))
    return {key: reply[key] for key in ("name", "description", "style", "params")}
