"""``manage.py backtest``: run one backtest from the command line and write its result.

Examples::

    python manage.py backtest --data candles.csv.gz \\
        --symbol BTC/USDT --timeframe 1h --strategy sma_crossover \\
        --params '{"fast": 20, "slow": 50}' --cash 10000 --fee 0.001 --output result.json

    python manage.py backtest --symbol BTC/USDT --timeframe 1m --start 2025-06-01 \\
        --end 2025-07-01 --strategy-file my_strategy.py --check-lookahead --output r.json --full

Without ``--data`` the candles come from the candle store (market-data service).
A ``--data`` file is parsed once (pyarrow) and kept under ``var/cache/candles``
until it changes, so later runs on it skip the parse (``--no-cache`` to bypass).
The JSON holds the metrics, every trade and position change, and the equity and
drawdown curves downsampled to at most ``--points`` points (each curve's highs
and lows kept, so the drawdown it shows is the true maximum); ``--full`` also
writes every candle's equity, drawdown and position size to a Parquet file next
to the JSON. Bad input exits with a non-zero status and a message; a
lookahead-bias finding writes the output and then exits with status 3.

Start-up is kept to what a backtest needs: no system checks (they import the
URL configuration, every view and ccxt), no pandas for CSV files or the SMA
strategies; ``tests/backtests/test_cli.py`` checks the modules a run loads.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.backtests import storage
from apps.backtests.engine import BacktestConfig, BacktestResult, Candles, load_csv
from apps.backtests.engine.errors import BacktestError
from apps.backtests.engine.io import write_curves
from apps.backtests.models import StrategyKind
from apps.backtests.services import PREVIEW_POINTS, load_candles, strategy_check_lookahead, strategy_run

LOOKAHEAD_EXIT_STATUS = 3
DEFAULT_POINTS = PREVIEW_POINTS  # the run page preview's resolution
MIN_POINTS = 10


def _parse_time(value: str | None, option: str) -> datetime | None:
    """ISO date/datetime (UTC unless it says otherwise) or epoch milliseconds."""
    if value is None:
        return None
    text = value.strip()
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(text)  # 3.11 accepts a trailing Z
    except (ValueError, OverflowError, OSError) as exc:
        raise CommandError(
            f"{option}: expected an ISO date/time or epoch milliseconds, got {value!r}"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_spec(value: str | None, option: str) -> Any:
    """A number (shorthand) or a JSON object spec."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        spec = json.loads(value)
    except ValueError as exc:
        raise CommandError(f"{option}: expected a number or a JSON object, got {value!r}") from exc
    if not isinstance(spec, dict):
        raise CommandError(f"{option}: expected a number or a JSON object")
    return spec


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


class Command(BaseCommand):
    help = (
        "Run a backtest of a built-in strategy or a strategy file and write the result as JSON: "
        "metrics, trades, positions and equity/drawdown curves downsampled to --points points "
        "(highs and lows kept); --full also writes every candle's equity, drawdown and position "
        "to <output>.curves.parquet."
    )
    # The system checks load the URL configuration and with it every view, the API
    # and ccxt: seconds of start-up for checks about the web app, which this command
    # does not serve. ``manage.py check`` (and migrate, serve) still run them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_argument_group("data")
        source.add_argument("--data", help="CSV or CSV.gz file: timestamp(ms),open,high,low,close,volume")
        source.add_argument(
            "--no-cache",
            action="store_true",
            help="parse --data even if var/cache/candles holds it already parsed (and do not store it there)",
        )
        source.add_argument(
            "--exchange", default="binance", help="exchange of the candle store (default binance)"
        )
        source.add_argument("--symbol", help="market symbol, e.g. BTC/USDT")
        source.add_argument("--timeframe", help="candle timeframe, e.g. 1m, 1h")
        source.add_argument("--start", help="first candle (ISO date/time, UTC, or epoch ms), inclusive")
        source.add_argument("--end", help="end of the range (ISO date/time, UTC, or epoch ms), exclusive")

        strategy = parser.add_argument_group("strategy").add_mutually_exclusive_group(required=True)
        strategy.add_argument("--strategy", help="name of a built-in strategy (see --list-strategies)")
        strategy.add_argument("--strategy-file", help="Python file with one Strategy/SignalStrategy class")
        strategy.add_argument("--list-strategies", action="store_true", help="print the built-ins and exit")
        parser.add_argument("--params", default="{}", help='strategy parameters as JSON, e.g. {"fast": 20}')

        run = parser.add_argument_group("simulation")
        run.add_argument("--cash", type=float, default=10_000.0, help="initial cash (quote currency)")
        run.add_argument("--fee", default="0", help="fee rate (0.001 = 0.1%%) or a JSON fee model")
        run.add_argument("--slippage", default=None, help="slippage fraction or a JSON slippage model")
        run.add_argument(
            "--sizing", default=None, help='JSON sizing, default {"type": "percent_equity", "value": 1}'
        )
        run.add_argument(
            "--leverage", type=float, default=None, help="leverage (implies --market-type futures)"
        )
        run.add_argument("--market-type", choices=("spot", "futures"), default=None)
        run.add_argument("--margin-mode", choices=("isolated", "cross"), default="isolated")
        run.add_argument("--allow-short", action="store_true", help="trade short signals too (futures)")
        run.add_argument("--check-lookahead", action="store_true", help="also run the lookahead-bias check")
        run.add_argument(
            "--funding",
            default=None,
            metavar="{history,none,RATE}",
            help="futures funding: the stored history of --exchange/--symbol (the default for candles "
            "from the store; none for a --data file), none, or a constant rate per 8 hours such as 0.0001",
        )

        output = parser.add_argument_group("output")
        output.add_argument("--output", help="write the JSON result to this file (default: stdout)")
        output.add_argument(
            "--points",
            type=int,
            default=DEFAULT_POINTS,
            help=f"at most this many points per curve in the JSON (default {DEFAULT_POINTS}, min {MIN_POINTS}); "
            "each curve's highs and lows are kept",
        )
        output.add_argument(
            "--full",
            action="store_true",
            help="also write the full-resolution curves (timestamp ms, equity, drawdown, position_size "
            "per candle) as Parquet to <output without .json>.curves.parquet; needs --output",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list_strategies"]:
            from apps.backtests.strategies.registry import list_strategies

            for info in list_strategies():
                self.stdout.write(json.dumps(info.to_dict()))
            return
        for option in ("symbol", "timeframe"):
            if not options[option]:
                raise CommandError(f"--{option} is required")
        if options["points"] < MIN_POINTS:
            raise CommandError(f"--points must be at least {MIN_POINTS}")
        curves_path = self._curves_path(options)
        started = time.perf_counter()
        params = self._params(options["params"])
        config = self._config(options)
        candles = self._candles(options)
        candles, config, futures_info = self._futures(options, candles, config)
        kind, name, source, label = self._strategy(options)
        try:
            result = strategy_run(
                kind=kind, name=name, source=source, params=params, candles=candles, config=config
            )
            result.info = {**(result.info or {}), **futures_info}
            report = None
            if options["check_lookahead"]:
                report = strategy_check_lookahead(
                    kind=kind, name=name, source=source, params=params, candles=candles
                )
        except BacktestError as exc:
            raise CommandError(str(exc)) from exc

        output = {
            **result.to_dict(include_curves=False),
            **self._curves(result, options["points"], curves_path),
            "data": {
                "source": options["data"] or "store",
                "exchange": options["exchange"],
                "symbol": options["symbol"],
                "timeframe": options["timeframe"],
                "candles": len(candles),
                "first": int(candles.timestamp[0]),
                "last": int(candles.timestamp[-1]),
            },
        }
        if label:
            output["strategy"] = {**output.get("strategy", {}), "file": label}
        if report is not None:
            output["lookahead"] = report.to_dict()
        # orjson: ~10x faster than json on thousands of trades, and a non-finite float becomes null.
        text = orjson.dumps(output, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()
        if options["output"]:
            target = Path(options["output"]) if curves_path is None else curves_path
            try:
                if curves_path is not None:
                    write_curves(curves_path, result)
                    target = Path(options["output"])
                target.write_text(text + "\n")
            except OSError as exc:
                raise CommandError(f"cannot write {target}: {exc}") from exc
        else:
            self.stdout.write(text)
        self._summary(result, options, time.perf_counter() - started)
        if report is not None and not report.ok:
            raise CommandError(report.summary(), returncode=LOOKAHEAD_EXIT_STATUS)
        if report is not None:
            self.stderr.write(report.summary())

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _params(text: str) -> dict[str, Any]:
        try:
            params = json.loads(text)
        except ValueError as exc:
            raise CommandError(f"--params is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise CommandError('--params must be a JSON object, e.g. {"fast": 20, "slow": 50}')
        return params

    @staticmethod
    def _config(options: dict[str, Any]) -> BacktestConfig:
        leverage = options["leverage"]
        market_type = options["market_type"] or ("futures" if (leverage or 1.0) != 1.0 else "spot")
        if options["allow_short"] and not options["market_type"]:
            market_type = "futures"
        sizing = options["sizing"]
        if sizing is not None:
            try:
                sizing = json.loads(sizing)
            except ValueError as exc:
                raise CommandError(f"--sizing is not valid JSON: {exc}") from exc
        start, end = _parse_time(options["start"], "--start"), _parse_time(options["end"], "--end")
        if start and end and start >= end:
            raise CommandError("--start must be before --end")
        try:
            return BacktestConfig(
                initial_cash=options["cash"],
                market_type=market_type,
                leverage=leverage or 1.0,
                margin_mode=options["margin_mode"],
                fee=_parse_spec(options["fee"], "--fee"),
                slippage=_parse_spec(options["slippage"], "--slippage"),
                sizing=sizing,
                allow_short=options["allow_short"],
            )
        except BacktestError as exc:
            raise CommandError(str(exc)) from exc

    def _candles(self, options: dict[str, Any]) -> Candles:
        start = _parse_time(options["start"], "--start")
        end = _parse_time(options["end"], "--end")
        if options["data"]:
            try:
                cache = None if options["no_cache"] else settings.VAR_DIR / "cache" / "candles"
                candles = load_csv(options["data"], cache_dir=cache)
            except BacktestError as exc:
                raise CommandError(str(exc)) from exc
            except (OSError, ValueError, EOFError) as exc:
                raise CommandError(f"cannot read {options['data']}: {exc}") from exc
            candles = candles.between(_ms(start), _ms(end))
        else:
            candles = self._store_candles(options, start, end)
        if len(candles) == 0:
            raise CommandError("no candles in the selected range")
        try:
            candles.validate()
        except BacktestError as exc:
            raise CommandError(str(exc)) from exc
        return candles

    @staticmethod
    def _store_candles(options: dict[str, Any], start: datetime | None, end: datetime | None) -> Candles:
        try:
            candles = load_candles(
                exchange=options["exchange"],
                symbol=options["symbol"],
                timeframe=options["timeframe"],
                start=start,
                end=end,
            )
        except (ValueError, LookupError) as exc:
            raise CommandError(f"cannot load candles from the store: {exc}") from exc
        if len(candles) == 0:
            raise CommandError(
                f"no candles in the store for {options['exchange']} {options['symbol']} "
                f"{options['timeframe']} in the selected range"
            )
        return candles

    @staticmethod
    def _futures(
        options: dict[str, Any], candles: Candles, config: BacktestConfig
    ) -> tuple[Candles, BacktestConfig, dict[str, Any]]:
        """Mark-price candles and funding from the store for a futures run (``--funding``)."""
        if config.market_type != "futures":
            if options["funding"] not in (None, "none"):
                raise CommandError("--funding applies to futures runs (--market-type futures or --leverage)")
            return candles, config, {}
        from apps.backtests.services.futures import funding_note, futures_inputs
        from apps.backtests.specs import resolve_funding

        settings: dict[str, Any] = {"market_type": "futures"}
        source, errors = resolve_funding(options["funding"], settings)
        if errors:
            raise CommandError(f"--funding: {errors['funding']}")
        if "funding_rates" in settings:
            try:
                config = BacktestConfig.from_dict(
                    {**config.to_dict(), "funding_rates": settings["funding_rates"]}
                )
            except BacktestError as exc:
                raise CommandError(f"--funding: {exc}") from exc
        if options["data"] and options["funding"] is None:
            # Candles from a file: the store is read only when asked (--funding history).
            note = "candles from a file: no funding unless --funding history (the store's) or a rate is given"
            return candles, config, {"funding_source": "none", "funding_note": note}
        if options["data"] and source != "history":
            return (
                candles,
                config,
                {"funding_source": source, "funding_note": funding_note(source, config.to_dict())},
            )
        inputs = futures_inputs(
            exchange=options["exchange"], symbol=options["symbol"], timeframe=options["timeframe"],
            candles=candles, config=config, funding_source=source,
        )  # fmt: skip
        return inputs.candles, BacktestConfig.from_dict(inputs.config), inputs.info

    # ------------------------------------------------------------------ output
    @staticmethod
    def _curves_path(options: dict[str, Any]) -> Path | None:
        if not options["full"]:
            return None
        if not options["output"]:
            raise CommandError("--full needs --output: the curves go to a Parquet file next to the JSON")
        output = Path(options["output"])
        stem = output.name[: -len(".json")] if output.name.endswith(".json") else output.name
        return output.with_name(f"{stem}.curves.parquet")

    @staticmethod
    def _curves(result: BacktestResult, points: int, full: Path | None) -> dict[str, Any]:
        """Equity and drawdown as ``[[timestamp_ms, value], ...]`` at the same downsampled instants."""
        equity, drawdown = result.equity, result.drawdown
        keep = np.union1d(
            storage.downsample_indices(equity, points // 2), storage.downsample_indices(drawdown, points // 2)
        )
        ts = result.equity_timestamps[keep].tolist()
        return {
            "equity": [list(pair) for pair in zip(ts, equity[keep].tolist(), strict=True)],
            "drawdown": [list(pair) for pair in zip(ts, drawdown[keep].tolist(), strict=True)],
            "curves": {
                "points": len(keep),
                "candles": len(equity),
                "downsampled": len(keep) < len(equity),
                "full": None if full is None else full.name,
            },
        }

    # ------------------------------------------------------------------ runs
    @staticmethod
    def _strategy(options: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
        """(kind, built-in name, user source, file label) for the one strategy runner."""
        if not options["strategy_file"]:
            return StrategyKind.BUILTIN, options["strategy"], None, None
        path = Path(options["strategy_file"])
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read strategy file {path}: {exc}") from exc
        return StrategyKind.USER, "", source, path.name

    def _summary(self, result: Any, options: dict[str, Any], seconds: float) -> None:
        metrics = result.metrics

        def pct(key: str) -> str:
            value = metrics.get(key)
            return "n/a" if value is None else f"{value:.2%}"

        sharpe = metrics.get("sharpe_ratio")
        sharpe_text = "n/a" if sharpe is None else f"{sharpe:.2f}"
        lines = [
            (
                f"total return {pct('total_return')}, max drawdown {pct('max_drawdown')}, "
                f"sharpe {sharpe_text}, trades {metrics.get('total_trades')}, "
                f"{seconds:.2f} s"
            ),
        ]
        if options["output"]:
            lines.append(f"result written to {options['output']}")
        if options["full"]:
            lines.append(f"full-resolution curves written to {self._curves_path(options)}")
        # The JSON may be on stdout, so the human summary goes to stderr.
        stream = self.stderr if not options["output"] else self.stdout
        for line in lines:
            stream.write(line)
