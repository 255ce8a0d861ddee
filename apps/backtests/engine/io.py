"""Reading candle files: ``timestamp,open,high,low,close,volume`` CSV (plain or compressed).

pyarrow's multi-threaded CSV reader parses a year of one-minute candles
(525,600 rows, 30 MB) several times faster than ``pandas.read_csv`` and needs
no pandas: the columns go from Arrow buffers to numpy without it (``Array.to_numpy``
would import pandas, a second of start-up for the CLI). The compression is taken
from the file name (``.gz``, ``.bz2``, ``.zst``, ``.lz4``), as pandas did.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .candles import COLUMNS, Candles
from .errors import BacktestError

if TYPE_CHECKING:
    import pyarrow as pa

CSV_COLUMNS = ("timestamp", *COLUMNS)
# Bigger blocks than the 1 MB default: fewer chunks to stitch, same parallelism on a year of 1m.
_BLOCK_SIZE = 8 << 20


def load_csv(path: str | Path) -> Candles:
    """Read ``timestamp,open,high,low,close,volume`` (timestamp in ms) from a CSV or CSV.gz file.

    Other columns are ignored; an empty price is NaN (which ``Candles.validate``
    rejects). Raises ``BacktestError`` for a missing file, a missing column or a
    value that is not a number (an integer for ``timestamp``); a damaged
    compressed file raises ``OSError``.
    """
    import pyarrow as pa
    from pyarrow import csv

    path = Path(path)
    if not path.exists():
        raise BacktestError(f"data file not found: {path}")
    types = {"timestamp": pa.int64(), **{name: pa.float64() for name in COLUMNS}}
    try:
        table = csv.read_csv(
            path,
            read_options=csv.ReadOptions(block_size=_BLOCK_SIZE),
            convert_options=csv.ConvertOptions(column_types=types, include_columns=list(CSV_COLUMNS)),
        )
        timestamp = _numpy(table.column("timestamp"), np.int64)
    except (pa.ArrowInvalid, pa.ArrowKeyError, ValueError, KeyError) as exc:
        raise BacktestError(
            f"cannot read {path.name}: expected columns timestamp,open,high,low,close,volume ({exc})"
        ) from exc
    return Candles(timestamp, *(_numpy(table.column(name), np.float64) for name in COLUMNS))


def _numpy(column: pa.ChunkedArray, dtype: type[np.generic]) -> np.ndarray:
    """One contiguous numpy array from the column's chunks (nulls become NaN; none allowed in ints)."""
    out = np.empty(len(column), dtype=dtype)
    at = 0
    for chunk in column.chunks:
        n = len(chunk)
        validity, data = chunk.buffers()
        values = np.frombuffer(data, dtype=dtype, count=n, offset=chunk.offset * out.itemsize)
        out[at : at + n] = values
        if chunk.null_count:
            if dtype is not np.float64:  # only timestamp is an integer column
                raise ValueError("timestamp has empty values")
            bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
            out[at : at + n][bits[chunk.offset : chunk.offset + n] == 0] = np.nan
        at += n
    return out
