"""Whole-process CLI benchmark (issue 10 "A CLI as fast as the engine"); medians of 3.

Run from the repository root::

    .venv/bin/python benchmarks/cli.py [--candles 525600] [--repeat 3]

Data: one year of one-minute candles (525,600) from the seeded random walk of
``benchmarks/backtest.py`` (the longest real 1m file has ~214k rows), prices
rounded to cents, written once as CSV to ``benchmarks/out/`` and reused.

Figures, each the median of ``--repeat`` runs:
* ``python manage.py backtest --data file.csv --strategy sma_crossover ...`` as a
  whole process (interpreter, Django set-up, CSV, run, JSON written): the first
  read of the file (an empty candle cache: parse + cache write) and later reads
  (the parsed columns come from ``var/cache/candles``); target < 1.5 s.
* backtesting.py (``backtesting`` package) running the same SMA(20)/SMA(50)
  crossover on the same file in one process (pandas ``read_csv`` + ``Backtest.run``),
  timed as a whole process too, and in-process (read + run); the ratio to the
  CLI (target: CLI >= 3x faster).
* The first backtest in a fresh Python process through the service
  (``django.setup()``, ``load_csv``, ``strategy_run``); target < 1 s.

Same strategy on both sides: long only, enter when SMA(20) crosses above
SMA(50), exit when it crosses below, fills at the next candle's open, 0.1% fee
per side, all equity per trade (backtesting.py's ``FractionalBacktest`` so that
a position may hold a fraction of a coin). Rule differences: backtesting.py's
``crossover`` needs a strict ``<`` on the previous candle where the engine's
``crossed_above`` accepts ``<=`` (ties are rare on this data), and
backtesting.py sizes a buy at 99.99% of its equity and force-closes at the last
candle's close; the trade counts are printed so any difference shows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from backtest import FAST, FEE, SLOW, random_walk  # the shared seeded data

OUT = ROOT / "benchmarks" / "out"
PYTHON = sys.executable

BACKTESTING_PY = """
import sys, time, warnings
t0 = time.perf_counter()
import pandas as pd
from backtesting import Strategy
from backtesting.lib import FractionalBacktest, crossover
from backtesting.test import SMA
warnings.filterwarnings("ignore")

class SmaCross(Strategy):
    def init(self):
        self.fast = self.I(SMA, self.data.Close, {fast})
        self.slow = self.I(SMA, self.data.Close, {slow})

    def next(self):
        if crossover(self.fast, self.slow):
            if not self.position:
                self.buy()
        elif crossover(self.slow, self.fast):
            self.position.close()

t1 = time.perf_counter()
df = pd.read_csv({path!r})
df.index = pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True)
df.columns = ["Open", "High", "Low", "Close", "Volume"]
bt = FractionalBacktest(df, SmaCross, cash=10_000, commission={fee}, finalize_trades=True)
stats = bt.run()
t2 = time.perf_counter()
print(t2 - t0, t2 - t1, len(stats["_trades"]), stats["Equity Final [$]"])
"""

SERVICE = """
import os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from django.conf import settings
from apps.backtests.engine import BacktestConfig, load_csv
from apps.backtests.services import strategy_run
candles = load_csv({path!r}, cache_dir=settings.VAR_DIR / "cache" / "candles")
result = strategy_run(kind="builtin", name="sma_crossover", params={{"fast": {fast}, "slow": {slow}}},
                      candles=candles, config=BacktestConfig(fee={fee}))
print(time.perf_counter() - t0, result.metrics["total_trades"], "pandas" in sys.modules)
"""


def write_csv(n: int) -> Path:
    """The random walk as ``timestamp,open,high,low,close,volume`` (cents), generated once."""
    path = OUT / f"cli_{n}.csv"
    if path.exists():
        return path
    import pyarrow as pa
    from pyarrow import csv

    c = random_walk(n)
    cols = {"timestamp": c.timestamp}
    # Rounding each price to cents keeps low <= open, close <= high (rounding is monotone).
    for name in ("open", "high", "low", "close"):
        cols[name] = np.round(getattr(c, name), 2)
    cols["volume"] = np.round(c.volume, 4)
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(b"timestamp,open,high,low,close,volume\n")
        csv.write_csv(pa.table(cols), f, csv.WriteOptions(include_header=False))
    tmp.replace(path)
    return path


def timed_process(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args[:4]} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candles", type=int, default=525_600)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-backtesting-py", action="store_true", help="CLI and service figures only")
    args = parser.parse_args()
    n, repeat = args.candles, args.repeat
    data = write_csv(n)
    load = os.getloadavg()
    print(
        f"data: {data.relative_to(ROOT)} ({n:,} one-minute candles, {data.stat().st_size / 1e6:.1f} MB); "
        f"medians of {repeat}; load average {load[0]:.1f} on {os.cpu_count()} cores"
    )

    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp) / "var"
        out = Path(tmp) / "result.json"
        env = {**os.environ, "VAR_DIR": str(var)}
        cli = [
            PYTHON, "manage.py", "backtest", "--data", str(data), "--symbol", "BTC/USDT",
            "--timeframe", "1m", "--strategy", "sma_crossover",
            "--params", json.dumps({"fast": FAST, "slow": SLOW}), "--fee", str(FEE), "--output", str(out),
        ]  # fmt: skip
        cold = []
        for _ in range(repeat):
            for cached in (var / "cache" / "candles").glob("*"):
                cached.unlink()
            cold.append(timed_process(cli, env)[0])
        warm = [timed_process(cli, env)[0] for _ in range(repeat)]
        result = json.loads(out.read_text())
        cli_trades = result["metrics"]["total_trades"]
        print(
            f"CLI whole process, first read of the CSV: {statistics.median(cold):.3f} s; "
            f"later reads (candle cache): {statistics.median(warm):.3f} s "
            f"({cli_trades} trades, final equity {result['metrics']['end_equity']:.2f}, "
            f"JSON {out.stat().st_size / 1e6:.1f} MB, {result['curves']['points']} curve points)"
        )

        service = SERVICE.format(root=str(ROOT), path=str(data), fast=FAST, slow=SLOW, fee=FEE)
        runs = [timed_process([PYTHON, "-c", service], env) for _ in range(repeat)]
        inner = [float(stdout.split()[0]) for _, stdout in runs]
        _, trades, pandas_loaded = runs[-1][1].split()
        print(
            f"first backtest in a fresh process through the service: {statistics.median([w for w, _ in runs]):.3f} s "
            f"wall incl. interpreter start; {statistics.median(inner):.3f} s set-up + load + run "
            f"({trades} trades, pandas imported: {pandas_loaded})"
        )

    if args.skip_backtesting_py:
        return
    script = BACKTESTING_PY.format(path=str(data), fast=FAST, slow=SLOW, fee=FEE)
    bt_runs = [timed_process([PYTHON, "-c", script]) for _ in range(repeat)]
    bt_wall = statistics.median([w for w, _ in bt_runs])
    fields = [stdout.split() for _, stdout in bt_runs]
    bt_inner = statistics.median(float(f[1]) for f in fields)
    bt_trades, bt_equity = int(fields[-1][2]), float(fields[-1][3])
    print(
        f"backtesting.py whole process: {bt_wall:.3f} s; read + run in process: {bt_inner:.3f} s "
        f"({bt_trades} trades, final equity {bt_equity:.2f})"
    )
    for label, seconds in (("first read", statistics.median(cold)), ("cached", statistics.median(warm))):
        print(
            f"ratio backtesting.py / CLI ({label}): {bt_wall / seconds:.1f}x whole process, "
            f"{bt_inner / seconds:.1f}x against backtesting.py's in-process time"
        )
    print(f"trade counts: CLI {cli_trades}, backtesting.py {bt_trades}")


if __name__ == "__main__":
    main()
