"""User strategy code: static validation, and the sandbox process refusing or stopping
every kind of abuse with a clear message while the calling process stays unharmed.

Runtime tests start real sandbox processes (about a second each). Several call the
internal ``runner._run`` with validation skipped, to prove that the runtime and
kernel layers hold on their own even if static validation missed something.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from apps.backtests.engine import (
    BacktestCancelled,
    BacktestConfig,
    Candles,
    StrategyError,
    run_backtest,
)
from apps.backtests.engine.errors import ParamError
from apps.backtests.strategies.registry import build_strategy
from apps.backtests.strategies.sandbox import (
    CodeValidationError,
    SandboxLimits,
    SandboxMemoryError,
    SandboxTimeout,
    SandboxViolation,
    describe_user_strategy,
    run_user_backtest,
    runner,
    validate_code,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

SMA_USER = textwrap.dedent(
    """
    import numpy as np
    import pandas as pd


    class MySma(SignalStrategy):
        name = "my_sma"
        params = {"fast": Param("int", 5, min=2), "slow": Param("int", 12, min=3)}

        def signals(self, data):
            close = pd.Series(data.close)
            fast = close.rolling(self.p.fast).mean()
            slow = close.rolling(self.p.slow).mean()
            above = (fast > slow).to_numpy()
            prev = np.concatenate(([False], above[:-1]))
            valid = ~np.isnan(slow.to_numpy())
            prev_valid = np.concatenate(([False], valid[:-1]))
            entries = above & ~prev & prev_valid
            exits = ~above & prev & valid
            return Signals(long_entries=entries, long_exits=exits)
    """
)

EVENT_USER = textwrap.dedent(
    """
    import math


    class EveryTen(Strategy):
        params = {"every": Param("int", 10, min=2)}

        def initialize(self):
            self.count = 0

        def on_data(self, candle):
            self.count += 1
            if self.count % self.p.every == 0:
                if self.get_position_size() > 0:
                    self.close_position()
                else:
                    self.buy(math.floor(self.get_cash() / candle.close * 100) / 100)
    """
)


def wrap_signals(body: str) -> str:
    """A valid SignalStrategy whose ``signals`` runs ``body`` first (line 4 onwards)."""
    lines = textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)
    return (
        "class Probe(SignalStrategy):\n"
        "    def signals(self, data):\n"
        "        n = len(data.close)\n"
        f"{lines}\n"
        "        return Signals(long_entries=data.close > 1e18)\n"
    )


@pytest.fixture(scope="module")
def candles() -> Candles:
    rng = np.random.default_rng(3)
    n = 600
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    return Candles.from_arrays(
        np.arange(n, dtype=np.int64) * 3_600_000,
        open_,
        high,
        low,
        close,
        np.full(n, 5.0),
    )


def run_unvalidated(source: str, candles: Candles, limits: SandboxLimits | None = None):
    """Run source in the sandbox WITHOUT static validation (tests the runtime layers)."""
    header = {
        "task": "backtest",
        "source": source,
        "params": {},
        "config": BacktestConfig().to_dict(),
    }
    return runner._run(
        header,
        runner._candle_arrays(candles),
        limits or SandboxLimits(cpu_seconds=10, wall_seconds=30),
    )


def messages(issues) -> str:
    return " | ".join(f"{i.line}:{i.message}" for i in issues)


# --------------------------------------------------------------------------- static validation


def test_valid_signal_and_event_strategies_pass_validation():
    assert validate_code(SMA_USER) == []
    assert validate_code(EVENT_USER) == []


def test_syntax_error_is_reported_with_its_line():
    issues = validate_code("class A(SignalStrategy):\n    def signals(self, data)\n        return 1\n")
    assert len(issues) == 1
    assert issues[0].line == 2
    assert "syntax error" in issues[0].message


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("import os", "import of 'os' is not allowed"),
        ("import subprocess", "import of 'subprocess' is not allowed"),
        ("import socket", "import of 'socket' is not allowed"),
        ("from os import path", "import of 'os' is not allowed"),
        ("import numpy.ctypeslib", "import of 'numpy.ctypeslib' is not allowed"),
        ("from numpy import load", "importing 'load' from 'numpy' is not allowed"),
        ("from math import *", "import names explicitly"),
        ("x = open('/etc/passwd').read()", "'open': file access is not allowed"),
        (
            "x = ().__class__.__bases__[0].__subclasses__()",
            "dunder attribute '__class__'",
        ),
        ("x = getattr((), '__cl' + 'ass__')", "'getattr': dynamic attribute access"),
        ("x = eval('1')", "'eval': eval is not allowed"),
        ("exec('x = 1')", "'exec': exec is not allowed"),
        ("x = compile('1', 'f', 'eval')", "compiling code"),
        ("x = globals()", "globals() is not allowed"),
        ("x = __builtins__", "name '__builtins__' is not allowed"),
        ("x = __import__('os')", "dynamic imports are not allowed"),
        ("x = (i for i in ()).gi_frame.f_back", "attribute 'gi_frame' is not allowed"),
        ("x = 'a'.__len__", "dunder attribute"),
        ("x = data._secret", "private attribute '_secret'"),
        ("x = '__subclasses__'", "strings naming dunder attributes"),
        (
            "import numpy as np\nx = np.fromfile('/etc/passwd')",
            "attribute 'fromfile' is not allowed",
        ),
        (
            "import pandas as pd\nx = pd.read_csv('/etc/passwd')",
            "attribute 'read_csv' is not allowed",
        ),
        ("x = type(1)", "type() is not allowed"),
    ],
)
def test_dangerous_code_is_refused_with_line_numbers(snippet, expected):
    strategy = "class A(SignalStrategy):\n    def signals(self, data):\n        return None\n"
    source = f"x = 0\n{snippet}\n\n{strategy}"
    issues = validate_code(source)
    assert issues, snippet
    assert expected in messages(issues)
    assert issues[0].line == 2 or (issues[0].line == 3 and "\n" in snippet)


def test_missing_strategy_class_or_method_is_reported():
    assert "no strategy class found" in messages(validate_code("x = 1\n"))
    issues = validate_code("class A(SignalStrategy):\n    def other(self):\n        pass\n")
    assert "must define a method 'signals'" in messages(issues)
    assert issues[0].line == 1
    issues = validate_code("class A(Strategy):\n    def initialize(self):\n        pass\n")
    assert "must define a method 'on_data'" in messages(issues)
    one = "(Strategy):\n    def on_data(self, c):\n        pass\n"
    two = f"class A{one}class B{one}"
    assert "exactly one strategy class" in messages(validate_code(two))


def test_init_and_metaclasses_are_refused():
    source = (
        "class A(Strategy, metaclass=X):\n    def __init__(self):\n        pass\n"
        "    def on_data(self, c):\n        pass\n"
    )
    text = messages(validate_code(source))
    assert "metaclasses" in text
    assert "put set-up code in initialize()" in text


def test_run_user_backtest_refuses_invalid_code_before_starting_a_process(candles):
    with pytest.raises(CodeValidationError) as info:
        run_user_backtest("import os\n" + SMA_USER, candles, {}, BacktestConfig())
    assert info.value.line == 1
    assert "import of 'os' is not allowed" in str(info.value)


# --------------------------------------------------------------------------- sandboxed runs


def test_user_signal_strategy_gives_the_same_result_as_the_builtin(candles):
    config = BacktestConfig(fee=0.001)
    progress: list[float] = []
    user = run_user_backtest(SMA_USER, candles, {"fast": 5, "slow": 12}, config, progress=progress.append)
    builtin = run_backtest(candles, build_strategy("sma_crossover", {"fast": 5, "slow": 12}), config)
    assert user.metrics["total_trades"] > 3
    user_dict, builtin_dict = user.to_dict(), builtin.to_dict()
    assert user_dict.pop("strategy")["name"] == "my_sma"
    builtin_dict.pop("strategy")
    assert user_dict == builtin_dict
    assert progress and progress[-1] == pytest.approx(1.0)


def test_user_event_strategy_runs_and_its_prints_are_captured(candles):
    source = EVENT_USER.replace(
        "self.count += 1",
        "self.count += 1\n        if self.count == 1:\n            print('first', candle.close)",
    )
    result = run_user_backtest(source, candles, {"every": 25}, BacktestConfig())
    assert result.metrics["total_trades"] >= 10
    assert result.logs.startswith("first ")


def test_describe_user_strategy_returns_its_parameter_schema():
    info = describe_user_strategy(SMA_USER)
    assert info["name"] == "my_sma"
    assert info["style"] == "signal"
    assert info["params"]["fast"]["default"] == 5


def test_bad_params_for_user_code_raise_param_error(candles):
    with pytest.raises(ParamError) as info:
        run_user_backtest(SMA_USER, candles, {"fast": "x", "nope": 1}, BacktestConfig())
    assert set(info.value.fields) == {"fast", "nope"}


def test_runtime_error_reports_the_users_line_number(candles):
    source = wrap_signals("x = 1\ny = x / 0\n")
    assert validate_code(source) == []
    with pytest.raises(StrategyError) as info:
        run_user_backtest(source, candles, {}, BacktestConfig())
    assert info.value.line == 5
    assert "ZeroDivisionError" in str(info.value)


def test_reading_a_file_is_stopped_at_runtime_by_every_layer(candles):
    # builtins layer: open() is a refusing stub
    with pytest.raises(SandboxViolation, match="file access is not allowed") as info:
        run_unvalidated(wrap_signals("open('/etc/passwd').read()"), candles)
    assert info.value.line == 4
    # kernel layer: pandas opening a file fails, no descriptor can be created
    with pytest.raises(SandboxViolation, match="file, network and process access are not allowed"):
        run_unvalidated(wrap_signals("import pandas as pd\npd.read_csv('/etc/passwd')"), candles)


def test_importing_os_subprocess_or_socket_is_refused_at_runtime(candles):
    for module in ("os", "subprocess", "socket"):
        with pytest.raises(SandboxViolation, match=f"import of '{module}' is not allowed"):
            run_unvalidated(wrap_signals(f"import {module}"), candles)


def test_dunder_escape_reaches_nothing_outside_the_sandbox(candles, monkeypatch):
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "hunter2")
    # The classic escape to the os module through object's subclasses. Refused
    # statically; with validation skipped it gets os, and the kernel layer holds:
    # no secrets in the environment, no file can be opened, no process started.
    escape = textwrap.dedent(
        """
        wrap = [c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == '_wrap_close'][0]
        real_os = wrap.__init__.__globals__['sys'].modules['os']
        print('secret' if 'SANDBOX_TEST_SECRET' in real_os.environ else 'no secret')
        print('uid', real_os.getuid())
        try:
            real_os.fork()
            print('forked')
        except OSError as exc:
            print('fork refused', exc.errno)
        real_os.open('/etc/passwd', 0)
        """
    )
    source = wrap_signals(escape)
    assert any("dunder attribute" in i.message for i in validate_code(source))
    with pytest.raises(SandboxViolation, match="file, network and process access are not allowed"):
        run_unvalidated(source, candles)
    reply, _ = run_unvalidated(wrap_signals(escape.replace("real_os.open('/etc/passwd', 0)", "")), candles)
    logs = reply["logs"]
    assert "no secret" in logs
    assert "fork refused" in logs
    if os.geteuid() == 0:
        assert "uid 65534" in logs


def test_opening_a_socket_is_refused_even_through_an_escape(candles):
    source = wrap_signals(
        """
        wrap = [c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == '_wrap_close'][0]
        modules = wrap.__init__.__globals__['sys'].modules
        modules['socket'].create_connection(('127.0.0.1', 5432))
        """
    )
    with pytest.raises(SandboxViolation, match="network access is not allowed"):
        run_unvalidated(source, candles)
    raw = wrap_signals(
        """
        wrap = [c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == '_wrap_close'][0]
        modules = wrap.__init__.__globals__['sys'].modules
        modules['_socket'].socket()
        """
    )
    with pytest.raises(SandboxViolation, match="file, network and process access are not allowed"):
        run_unvalidated(raw, candles)


def test_infinite_loop_is_stopped_by_the_cpu_limit(candles):
    source = wrap_signals("while True:\n    n += 1")
    started = time.monotonic()
    with pytest.raises(SandboxTimeout, match="CPU-time limit of 1 s"):
        run_user_backtest(
            source,
            candles,
            {},
            BacktestConfig(),
            limits=SandboxLimits(cpu_seconds=1, wall_seconds=30),
        )
    assert time.monotonic() - started < 15


def test_wall_clock_limit_stops_a_run_that_does_not_finish(candles):
    source = wrap_signals("while True:\n    n += 1")
    with pytest.raises(SandboxTimeout, match="wall-clock limit of 3 s"):
        run_user_backtest(
            source,
            candles,
            {},
            BacktestConfig(),
            limits=SandboxLimits(cpu_seconds=60, wall_seconds=3),
        )


def test_memory_bomb_is_stopped_by_the_memory_limit(candles):
    for bomb in (
        "x = bytearray(50 * 1024 ** 3)",
        "x = [0] * (10 ** 10)",
        "x = []\nwhile True:\n    x.append(' ' * 10 ** 6)",
    ):
        with pytest.raises(SandboxMemoryError, match="ran out of memory"):
            run_user_backtest(
                wrap_signals(bomb),
                candles,
                {},
                BacktestConfig(),
                limits=SandboxLimits(memory_mb=1024),
            )


def test_cancel_kills_the_sandbox_process(candles):
    source = wrap_signals("while True:\n    n += 1")
    started = time.monotonic()
    with pytest.raises(BacktestCancelled):
        run_user_backtest(
            source,
            candles,
            {},
            BacktestConfig(),
            should_cancel=lambda: time.monotonic() - started > 1.5,
        )
    assert time.monotonic() - started < 5


def test_calling_process_is_unharmed_after_abuse(candles, tmp_path):
    before_children = _child_pids()
    with pytest.raises(SandboxTimeout):
        run_user_backtest(
            wrap_signals("while True:\n    n += 1"),
            candles,
            {},
            BacktestConfig(),
            limits=SandboxLimits(cpu_seconds=1),
        )
    with pytest.raises(SandboxMemoryError):
        run_user_backtest(wrap_signals("x = bytearray(50 * 1024 ** 3)"), candles, {}, BacktestConfig())
    # no sandbox process left behind, files and sockets still work here, and the
    # next sandboxed run succeeds
    assert _child_pids() == before_children
    (tmp_path / "still-writable").write_text("ok")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
    result = run_user_backtest(SMA_USER, candles, {}, BacktestConfig())
    assert result.metrics["total_trades"] > 0


def test_lockdown_blocks_files_sockets_and_processes_for_unrestricted_code():
    # The kernel layer alone: lock a process down the way the sandbox does, then
    # try with the real open/socket/fork (no restricted builtins involved).
    script = textwrap.dedent(
        """
        import os, sys
        sys.path.insert(0, sys.argv[1])
        from apps.backtests.strategies.sandbox import worker
        worker._preload()
        worker._dense_fds(os.dup(1))
        worker._lock_down({"cpu_seconds": 10, "memory_mb": 1024})
        import _socket
        results = []
        for name, attempt in [
            ("open", lambda: open("/etc/hostname")),
            ("socket", lambda: _socket.socket()),
            ("pipe", lambda: os.pipe()),
            ("fork", lambda: os.fork()),
        ]:
            try:
                attempt()
                results.append(name + ":allowed")
            except OSError as exc:
                results.append(name + ":refused")
        os.write(3, " ".join(results).encode())
        """
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", script, str(REPO_ROOT)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.stdout.decode() == "open:refused socket:refused pipe:refused fork:refused", out.stderr.decode()


def _child_pids() -> set[int]:
    try:
        text = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text()
    except OSError:
        return set()
    return {int(pid) for pid in text.split()}


# ------------------------------------------------------------------ no future candles
CHEATERS = {
    "broker data": "self.broker.data.close[i + 1]",
    "a history view's base": "self.history(5).close.base[i + 1]",
    "a huge history": "self.history(10 ** 9).close[i + 1]",
}


@pytest.mark.parametrize("peek", list(CHEATERS.values()), ids=list(CHEATERS))
def test_a_sandboxed_strategy_cannot_read_the_next_candle(candles, peek):
    """Issue 10: a sandboxed strategy reading ``close[i+1]`` won 99.6% of its trades."""
    source = textwrap.dedent(
        f"""
        class Cheat(Strategy):
            def on_data(self, candle):
                i = candle.index
                if i + 1 < 600 and {peek} > candle.close and self.get_position_size() == 0:
                    self.buy(1)
                elif self.get_position_size() > 0:
                    self.close_position()
        """
    )
    assert validate_code(source) == []  # the validator allows these paths ...
    with pytest.raises(StrategyError) as exc:  # ... and none of them leads to the next candle
        run_user_backtest(source, candles, {}, BacktestConfig())
    assert exc.value.line == 5


@pytest.mark.parametrize(
    "path",
    [
        "np.ma.core.inspect.stack()",
        "pd.core.interchange.utils.typing.get_type_hints(Strategy)",
        "pd.core.common.gc",
        "pd.compat.pyarrow.pa",
    ],
)
def test_module_handles_that_reach_frames_or_live_objects_are_refused(path):
    source = wrap_signals(f"import numpy as np\nimport pandas as pd\nx = {path}")
    assert validate_code(source), path


def test_mark_price_candles_travel_into_the_sandbox(candles):
    mark = Candles.from_arrays(candles.timestamp, candles.open, candles.high, candles.low, candles.close)
    data = candles.with_mark(mark)
    config = BacktestConfig(market_type="futures", leverage=2)
    result = run_user_backtest(EVENT_USER, data, {"every": 25}, config)
    assert result.info["price_source"] == "mark"
