"""The candle store's bulk paths: upsert and range read, without per-row ORM objects.

PostgreSQL uses binary COPY both ways: a write streams a numpy-built COPY
payload into a temp table and inserts it with ``ON CONFLICT DO NOTHING`` (so a
re-import changes nothing); a read streams ``COPY (SELECT ...) TO STDOUT`` and
maps the bytes straight onto a numpy structured array. Every other database
(the embedded SQLite default) takes a portable, slower path with
``executemany``/``fetchall``.
"""

# ruff: noqa: S608 - SQL is built only from module constants (table and column names); values are bound.
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from django.db import connection

from apps.marketdata.models import Candle

TABLE = Candle._meta.db_table
COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
CHUNK = 100_000

# One binary COPY tuple: field count, then (length, value) per column; every
# column is NOT NULL and fixed width, so the rows have a constant 74-byte layout.
_ROW_DTYPE = np.dtype(
    [("n", ">i2"), ("l0", ">i4"), ("open_time", ">i8")]
    + [item for i, c in enumerate(COLUMNS[1:], 1) for item in ((f"l{i}", ">i4"), (c, ">f8"))]
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"

Progress = Callable[[int, int], None]


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _copy_payload(ts: np.ndarray, ohlcv: np.ndarray) -> bytes:
    rows = np.empty(len(ts), dtype=_ROW_DTYPE)
    rows["n"] = len(COLUMNS)
    for i in range(len(COLUMNS)):
        rows[f"l{i}"] = 8
    rows["open_time"] = ts
    for i, name in enumerate(COLUMNS[1:]):
        rows[name] = ohlcv[:, i]
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def upsert(
    *, market_id: int, timeframe: str, ts: np.ndarray, ohlcv: np.ndarray, progress: Progress | None = None
) -> int:
    """Insert candles that are not stored yet; return how many were inserted.

    ``ts``: int64 open times (ms), sorted and unique; ``ohlcv``: float64 (n, 5).
    Must run inside a transaction (the caller's ``atomic``) so a failure leaves
    nothing half-written.
    """
    total = len(ts)
    if total == 0:
        return 0
    if _is_postgres():
        return _upsert_postgres(market_id, timeframe, ts, ohlcv, progress, total)
    return _upsert_portable(market_id, timeframe, ts, ohlcv, progress, total)


def _upsert_postgres(market_id, timeframe, ts, ohlcv, progress, total) -> int:
    with connection.cursor() as wrapper:
        cur = wrapper.cursor  # the psycopg cursor: COPY is not part of the DB-API
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS marketdata_candle_import "
            "(open_time bigint, open float8, high float8, low float8, close float8, volume float8) "
            "ON COMMIT DROP"
        )
        cur.execute("TRUNCATE marketdata_candle_import")
        for lo in range(0, total, CHUNK):
            hi = min(lo + CHUNK, total)
            with cur.copy("COPY marketdata_candle_import FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(_copy_payload(ts[lo:hi], ohlcv[lo:hi]))
            if progress:
                progress(hi, total)
        cur.execute(
            f"INSERT INTO {TABLE} (market_id, timeframe, open_time, open, high, low, close, volume) "
            "SELECT %s, %s, open_time, open, high, low, close, volume FROM marketdata_candle_import "
            "ORDER BY open_time "
            "ON CONFLICT (market_id, timeframe, open_time) DO NOTHING",
            [market_id, timeframe],
        )
        inserted = cur.rowcount
        cur.execute("TRUNCATE marketdata_candle_import")
    return inserted


def _upsert_portable(market_id, timeframe, ts, ohlcv, progress, total) -> int:
    sql = (
        f"INSERT INTO {TABLE} (market_id, timeframe, open_time, open, high, low, close, volume) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (market_id, timeframe, open_time) DO NOTHING"
    )
    with connection.cursor() as cur:
        before = cur.execute(
            f"SELECT COUNT(*) FROM {TABLE} WHERE market_id = %s AND timeframe = %s", [market_id, timeframe]
        ).fetchone()[0]
        for lo in range(0, total, CHUNK):
            hi = min(lo + CHUNK, total)
            values = ohlcv[lo:hi].tolist()
            times = ts[lo:hi].tolist()
            cur.executemany(sql, [(market_id, timeframe, t, *v) for t, v in zip(times, values, strict=True)])
            if progress:
                progress(hi, total)
        after = cur.execute(
            f"SELECT COUNT(*) FROM {TABLE} WHERE market_id = %s AND timeframe = %s", [market_id, timeframe]
        ).fetchone()[0]
    return after - before


def read(
    *,
    market_id: int,
    timeframe: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
    newest: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candles with ``start_ms <= open_time < end_ms``, oldest first (only the last ``newest`` if given).

    Returns ``(ts, ohlcv)``: int64 open times (ms) and a float64 (n, 5) array.
    """
    where = ["market_id = %s", "timeframe = %s"]
    params: list[object] = [market_id, timeframe]
    if start_ms is not None:
        where.append("open_time >= %s")
        params.append(int(start_ms))
    if end_ms is not None:
        where.append("open_time < %s")
        params.append(int(end_ms))
    query = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {' AND '.join(where)} ORDER BY open_time"
    if newest is not None:
        # The newest N via a backward index scan, then back into time order.
        inner = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {' AND '.join(where)} ORDER BY open_time DESC LIMIT %s"
        params.append(int(newest))
        query = f"SELECT * FROM ({inner}) AS newest ORDER BY open_time"
    if _is_postgres():
        return _read_postgres(query, params)
    with connection.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty((0, 5), dtype=np.float64)
    data = np.array(rows, dtype=np.float64)  # ms times < 2**53: exact in float64
    return data[:, 0].astype(np.int64), np.ascontiguousarray(data[:, 1:])


def _read_postgres(query: str, params: list[object]) -> tuple[np.ndarray, np.ndarray]:
    chunks: list[bytes] = []
    with connection.cursor() as wrapper:
        cur = wrapper.cursor
        # Inline the (int/str) parameters client-side: COPY takes no server-side binds.
        statement = cur.mogrify(query, params) if hasattr(cur, "mogrify") else query
        with cur.copy(f"COPY ({statement}) TO STDOUT (FORMAT BINARY)") as copy:
            for block in copy:
                chunks.append(bytes(block))
    payload = b"".join(chunks)
    body = payload[len(_COPY_HEADER) : -len(_COPY_TRAILER)]
    rows = np.frombuffer(body, dtype=_ROW_DTYPE)
    ts = rows["open_time"].astype(np.int64)
    ohlcv = np.empty((len(rows), 5), dtype=np.float64)
    for i, name in enumerate(COLUMNS[1:]):
        ohlcv[:, i] = rows[name]
    return ts, ohlcv


def stored_range(*, market_id: int, timeframe: str) -> tuple[int, int, int] | None:
    """(first open time, last open time, count) or None when nothing is stored."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT MIN(open_time), MAX(open_time), COUNT(*) FROM {TABLE} WHERE market_id = %s AND timeframe = %s",
            [market_id, timeframe],
        )
        first, last, count = cur.fetchone()
    return None if not count else (int(first), int(last), int(count))


def last_open_time(*, market_id: int, timeframe: str) -> int | None:
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT open_time FROM {TABLE} WHERE market_id = %s AND timeframe = %s "
            "ORDER BY open_time DESC LIMIT 1",
            [market_id, timeframe],
        )
        row = cur.fetchone()
    return None if row is None else int(row[0])
