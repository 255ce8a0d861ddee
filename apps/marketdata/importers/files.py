"""Read and validate candle files: Binance public-data dumps and plain OHLCV CSV.

Accepted inputs (optionally ``.gz``, or a ``.zip`` holding one CSV, as Binance
publishes them):

- Binance kline dumps (daily/monthly): 12 columns ``open_time, open, high, low,
  close, volume, close_time, quote_volume, count, taker_buy_base,
  taker_buy_quote, ignore``, with or without a header row, open times in
  milliseconds or (since 2025) microseconds;
- plain ``timestamp,open,high,low,close,volume`` (header optional; timestamp in
  s/ms/µs since the epoch or an ISO-8601 date).

Every failure raises ``ImportFailed`` naming the file and the 1-based line.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from apps.marketdata.errors import ImportFailed
from apps.marketdata.timeframes import bucket_start

NAMES = ["timestamp", "open", "high", "low", "close", "volume"]
# Plausible candle times: Bitcoin's genesis block .. a day from now.
EARLIEST_MS = int(datetime(2009, 1, 3, tzinfo=UTC).timestamp() * 1000)


@dataclass
class ParsedCandles:
    source: str
    ts: np.ndarray  # int64 ms, sorted, unique
    ohlcv: np.ndarray  # float64 (n, 5)
    rows: int  # data rows in the file (before dropping exact duplicates)


def _fail(source: str, line: int | None, message: str, column: str | None = None) -> ImportFailed:
    where = f"{source}, line {line}" if line else source
    fields = {"file": source, "line": line}
    if column:
        fields["column"] = column
    return ImportFailed(f"{where}: {message}", fields=fields)


def _open_text(path: Path) -> tuple[str, io.TextIOBase]:
    """(display name, text stream) for a plain, gzip or single-CSV zip file."""
    name = path.name
    try:
        if name.endswith(".zip"):
            archive = zipfile.ZipFile(path)
            members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
            if len(members) != 1:
                raise _fail(name, None, f"expected exactly one .csv inside the zip, found {len(members)}")
            raw = archive.read(members[0])
            return f"{name}:{members[0]}", io.StringIO(raw.decode("utf-8-sig"))
        if name.endswith(".gz"):
            return name, io.StringIO(gzip.decompress(path.read_bytes()).decode("utf-8-sig"))
        return name, io.StringIO(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise _fail(name, None, "file not found") from None
    except (OSError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as exc:
        raise _fail(name, None, f"cannot read the file ({exc})") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_candle_file(path: str | Path, *, timeframe: str) -> ParsedCandles:
    """Parse and validate a candle file; raise ``ImportFailed`` on the first bad line."""
    path = Path(path)
    source, stream = _open_text(path)
    text = stream.getvalue()
    first_line = text.split("\n", 1)[0].strip()
    if not first_line:
        raise _fail(source, 1, "the file is empty or starts with a blank line")
    first_fields = [f.strip() for f in first_line.split(",")]
    has_header = not _is_number(first_fields[0]) and first_fields[0].lower() in {
        "timestamp",
        "open_time",
        "time",
        "date",
        "datetime",
    }
    if len(first_fields) < 6:
        raise _fail(
            source,
            1,
            f"expected at least 6 columns (timestamp,open,high,low,close,volume), found {len(first_fields)}",
        )
    header_lines = 1 if has_header else 0
    ts, values, line_of = _parse_fast(text, header_lines)
    if ts is None:
        ts, values, line_of = _parse_checked(text, header_lines, source)
    _validate(source, line_of, ts, values, timeframe)

    rows = len(ts)
    order = np.argsort(ts, kind="stable")
    ts, values, line_sorted = ts[order], values[order], line_of[order]
    if rows > 1:
        same = np.flatnonzero(ts[1:] == ts[:-1])
        if len(same):
            conflicting = same[np.any(values[same + 1] != values[same], axis=1)]
            if len(conflicting):
                j = int(conflicting[0])
                raise _fail(
                    source,
                    int(line_sorted[j + 1]),
                    f"duplicate timestamp {_iso(ts[j])} with values different from line {int(line_sorted[j])}",
                    "timestamp",
                )
            keep = np.ones(rows, dtype=bool)
            keep[same + 1] = False
            ts, values = ts[keep], values[keep]
    return ParsedCandles(source=source, ts=ts, ohlcv=values, rows=rows)


def _parse_fast(text: str, header_lines: int):
    """The common case, all numbers: pandas' C parser straight to float64 (fast).

    Returns ``(None, None, None)`` when anything is off, so the checked path can
    find and name the offending line.
    """
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            header=None,
            skiprows=header_lines,
            usecols=range(6),
            names=NAMES,
            dtype="float64",
            skip_blank_lines=False,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None, None, None
    while len(frame) and frame.iloc[-1].isna().all():
        frame = frame.iloc[:-1]
    data = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(data).all():
        return None, None, None
    raw = data[:, 0]
    if (raw != np.floor(raw)).any():
        return None, None, None
    as_int = raw.astype(np.int64)
    ts = np.where(as_int >= 10**14, as_int // 1000, np.where(as_int >= 10**11, as_int, as_int * 1000))
    line_of = np.arange(len(frame)) + 1 + header_lines
    return ts, np.ascontiguousarray(data[:, 1:]), line_of


def _parse_checked(text: str, header_lines: int, source: str):
    """Column by column as text, naming the first line that is not a number or a date."""
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            header=None,
            skiprows=header_lines,
            usecols=range(6),
            names=NAMES,
            dtype=str,
            skip_blank_lines=False,
            engine="c",
        )
    except pd.errors.ParserError as exc:
        raise _fail(source, None, f"malformed CSV ({exc})") from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=NAMES, dtype=str)
    # A trailing blank line is not a row; blank lines elsewhere are errors.
    while len(frame) and frame.iloc[-1].isna().all():
        frame = frame.iloc[:-1]
    line_of = np.arange(len(frame)) + 1 + header_lines
    values = np.empty((len(frame), 5), dtype=np.float64)
    for i, column in enumerate(NAMES[1:]):
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers)
        if bad.any():
            row = int(np.argmax(bad))
            shown = frame[column].iloc[row]
            what = "missing value" if pd.isna(shown) else f"not a number: {shown!r}"
            raise _fail(source, int(line_of[row]), f"{column}: {what}", column)
        values[:, i] = numbers
    ts = _parse_timestamps(frame["timestamp"], source, line_of)
    return ts, values, line_of


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _parse_timestamps(column: pd.Series, source: str, line_of: np.ndarray) -> np.ndarray:
    numeric = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    missing = ~np.isfinite(numeric)
    ts = np.zeros(len(column), dtype=np.int64)
    if missing.any():
        # Not numbers: accept ISO-8601 dates (plain CSV), otherwise name the line.
        texts = column[missing]
        parsed = pd.to_datetime(texts, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(missing)[int(np.argmax(bad))])
            shown = column.iloc[row]
            what = "missing timestamp" if pd.isna(shown) else f"bad timestamp {shown!r}"
            raise _fail(source, int(line_of[row]), what, "timestamp")
        ts[missing] = parsed.dt.as_unit("ms").astype("int64").to_numpy()
    raw = numeric[~missing]
    fractional = raw != np.floor(raw)
    if fractional.any():
        row = int(np.flatnonzero(~missing)[int(np.argmax(fractional))])
        raise _fail(
            source, int(line_of[row]), f"bad timestamp {column.iloc[row]!r} (not an integer)", "timestamp"
        )
    # Unit by magnitude: µs (Binance spot since 2025) > 1e14 > ms > 1e11 > s.
    as_int = raw.astype(np.int64)
    ms = np.where(as_int >= 10**14, as_int // 1000, np.where(as_int >= 10**11, as_int, as_int * 1000))
    ts[~missing] = ms
    return ts


def _validate(source: str, line_of: np.ndarray, ts: np.ndarray, v: np.ndarray, timeframe: str) -> None:
    if len(ts) == 0:
        return
    now_ms = int(datetime.now(tz=UTC).timestamp() * 1000) + 86_400_000
    checks: list[tuple[np.ndarray, str, str]] = []
    out_of_range = (ts < EARLIEST_MS) | (ts > now_ms)
    checks.append((out_of_range, "timestamp", "bad timestamp {ts} (outside 2009-01-03 .. tomorrow)"))
    misaligned = bucket_start(ts, timeframe) != ts
    checks.append(
        (misaligned, "timestamp", "bad timestamp {ts}: not the start of a " + timeframe + " candle")
    )
    o, h, lo, c, vol = (v[:, i] for i in range(5))
    checks.append(((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "open", "prices must be positive"))
    checks.append((h < lo, "high", "high {h} is below low {l}"))
    checks.append((h < np.maximum(o, c), "high", "high {h} is below open/close"))
    checks.append((lo > np.minimum(o, c), "low", "low {l} is above open/close"))
    checks.append((vol < 0, "volume", "negative volume {vol}"))
    first_bad: tuple[int, str, str] | None = None
    for mask, column, template in checks:
        if mask.any():
            row = int(np.argmax(mask))
            if first_bad is None or row < first_bad[0]:
                first_bad = (row, column, template)
    if first_bad is None:
        return
    row, column, template = first_bad
    message = template.format(
        ts=_iso(ts[row]) if EARLIEST_MS <= ts[row] <= now_ms else int(ts[row]),
        h=_num(v[row, 1]),
        l=_num(v[row, 2]),
        vol=_num(v[row, 4]),
    )
    raise _fail(source, int(line_of[row]), message, column)


def _num(x: float) -> str:
    return np.format_float_positional(x, trim="-")
