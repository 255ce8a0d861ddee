"""Bots on user-written strategies: their sandbox sessions and which failures are the strategy's.

A user strategy never runs in the worker: a bot's tick asks a long-lived sandbox
process (``apps.backtests.strategies.sandbox.session``) holding the bot's pinned
version, with the backtests' lockdown and memory limit and, per tick, the CPU-time
and wall-clock limits below. Each worker process keeps a ``SessionPool`` keyed by
bot: the first tick of a bot in a process starts its session (about a second),
later ticks reuse it; sessions idle for ``BOT_SANDBOX_IDLE_SECONDS`` or beyond
``BOT_SANDBOX_POOL_SIZE`` (least recently used first) are closed, a session whose
step failed is closed and the next tick starts a new one.

A tick may land on any worker, so nothing in the process is trusted to carry
over: an event strategy's state goes out with every tick as JSON (the built-ins'
mechanism, ``Bot.strategy_state``) and comes back with the next one, and the
sandbox runs the module afresh for each state it restores (see
``sandbox/worker.py``), so a session that served another tick in between, or a
new process, continue the same way.

Settings (``config/settings.py``): ``BOT_SANDBOX_CPU_SECONDS`` (10) and
``BOT_SANDBOX_WALL_SECONDS`` (30) per tick (a tick must end well inside its
lease), ``BOT_SANDBOX_MEMORY_MB`` (1536, the backtests' limit),
``BOT_SANDBOX_POOL_SIZE`` (8 per worker process; a session is about 60 MB) and
``BOT_SANDBOX_IDLE_SECONDS`` (600).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings

from apps.backtests.engine.errors import BacktestError, ParamError, StrategyError
from apps.backtests.models import StrategyKind
from apps.backtests.strategies.sandbox import (
    SandboxLimits,
    SandboxMemoryError,
    SandboxTimeout,
    SandboxViolation,
)
from apps.backtests.strategies.sandbox.session import SandboxSession, SessionPool
from apps.bots.models import Bot

_pool: SessionPool | None = None
_pool_lock = threading.Lock()


def sandbox_limits() -> SandboxLimits:
    """The limits of one tick of a user strategy (a tick must end well inside its lease)."""
    return SandboxLimits(
        cpu_seconds=settings.BOT_SANDBOX_CPU_SECONDS,
        memory_mb=settings.BOT_SANDBOX_MEMORY_MB,
        wall_seconds=settings.BOT_SANDBOX_WALL_SECONDS,
    )


def session_pool() -> SessionPool:
    """This process's pool (made on first use: a Celery prefork child makes its own)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = SessionPool(
                max_sessions=settings.BOT_SANDBOX_POOL_SIZE,
                idle_seconds=settings.BOT_SANDBOX_IDLE_SECONDS,
            )
        return _pool


def is_user_code(bot: Bot) -> bool:
    return bot.strategy_kind == StrategyKind.USER


def is_event(bot: Bot) -> bool:
    """Whether the bot's user strategy is an event ``Strategy`` (from its pinned version)."""
    return bot.strategy_version.style == "event"


def start_session(bot: Bot, params: dict[str, Any] | None = None) -> SandboxSession:
    """A new sandbox session of the bot's pinned version (a replay owns one; ticks use the pool)."""
    version = bot.strategy_version
    return SandboxSession(version.source, bot.params if params is None else params, limits=sandbox_limits())


@contextmanager
def bot_session(bot: Bot) -> Iterator[SandboxSession]:
    """The bot's session from this process's pool (started when missing, dead or outdated)."""
    fingerprint = (bot.strategy_version_id, bot.code_hash, json.dumps(bot.params, sort_keys=True))
    with session_pool().session(bot.pk, fingerprint, lambda: start_session(bot)) as session:
        yield session


def bot_session_close(*, bot_id: int) -> None:
    """Close the bot's session in this process, if it has one (the bot stopped)."""
    if _pool is not None:
        _pool.discard(bot_id)


# The strategy's own faults: they fail the same way on every retry, so the bot goes to error at
# once. ``SandboxCrash`` (the process died without saying why) is not among them: it may be the
# machine's doing, and takes the loop's retries.
STRATEGY_FAULTS = (StrategyError, ParamError, SandboxViolation, SandboxTimeout, SandboxMemoryError)


def is_strategy_fault(bot: Bot, exc: BaseException) -> bool:
    """Whether ``exc`` from a tick is the user strategy's own fault (no retry helps)."""
    if not is_user_code(bot) or not isinstance(exc, BacktestError):
        return False
    return isinstance(exc, STRATEGY_FAULTS) or type(exc) is BacktestError
