"""The candle store's bulk paths: upsert and range read, without per-row ORM objects.

PostgreSQL uses binary COPY both ways: a write streams a numpy-built COPY
payload into a temp table and inserts it with ``ON CONFLICT DO NOTHING`` (so a
re-import changes nothing); a read aggregates each column into one binary
array (``array_agg``) whose bytes numpy decodes in place. Every other database
(the embedded SQLite default) takes a portable, slower path with
``executemany``/``fetchall``.
"""

# ruff: noqa: S608 - SQL is built only from module constants (table and column names); values are bound.
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from django.db import connection, transaction

from apps.marketdata.models import Candle, MarkCandle

TABLE = Candle._meta.db_table
# Mark-price candles: same columns and unique index, so every path below serves both (``table=``).
MARK_TABLE = MarkCandle._meta.db_table
TABLES = (TABLE, MARK_TABLE)
COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
CHUNK = 100_000
ANALYZE_AFTER = 50_000

# One binary COPY tuple: field count, then (length, value) per column; every
# column is NOT NULL and fixed width, so the rows have a constant 74-byte layout.
_ROW_DTYPE = np.dtype(
    [("n", ">i2"), ("l0", ">i4"), ("open_time", ">i8")]
    + [item for i, c in enumerate(COLUMNS[1:], 1) for item in ((f"l{i}", ">i4"), (c, ">f8"))]
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"

Progress = Callable[[int, int], None]


def _check_table(table: str) -> None:
    if table not in TABLES:  # table names are spliced into SQL: only ours
        raise ValueError(f"not a candle table: {table!r}")


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
    *,
    market_id: int,
    timeframe: str,
    ts: np.ndarray,
    ohlcv: np.ndarray,
    progress: Progress | None = None,
    table: str = TABLE,
) -> int:
    """Insert candles that are not stored yet; return how many were inserted.

    ``ts``: int64 open times (ms), sorted and unique; ``ohlcv``: float64 (n, 5).
    Must run inside a transaction (the caller's ``atomic``) so a failure leaves
    nothing half-written.
    """
    _check_table(table)
    total = len(ts)
    if total == 0:
        return 0
    if _is_postgres():
        return _upsert_postgres(market_id, timeframe, ts, ohlcv, progress, total, table)
    return _upsert_portable(market_id, timeframe, ts, ohlcv, progress, total, table)


def _upsert_postgres(market_id, timeframe, ts, ohlcv, progress, total, table) -> int:
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
            f"INSERT INTO {table} (market_id, timeframe, open_time, open, high, low, close, volume) "
            "SELECT %s, %s, open_time, open, high, low, close, volume FROM marketdata_candle_import "
            "ON CONFLICT (market_id, timeframe, open_time) DO NOTHING",
            [market_id, timeframe],
        )
        inserted = cur.rowcount
        cur.execute("TRUNCATE marketdata_candle_import")
    if inserted >= ANALYZE_AFTER:
        # Fresh statistics right away (autovacuum may take minutes): without
        # them the planner can misjudge the first range reads after a big load.
        transaction.on_commit(lambda: _analyze(table))
    return inserted


def _analyze(table: str) -> None:
    with connection.cursor() as cur:
        cur.execute(f"ANALYZE {table}")


def _upsert_portable(market_id, timeframe, ts, ohlcv, progress, total, table) -> int:
    sql = (
        f"INSERT INTO {table} (market_id, timeframe, open_time, open, high, low, close, volume) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (market_id, timeframe, open_time) DO NOTHING"
    )
    with connection.cursor() as cur:
        before = cur.execute(
            f"SELECT COUNT(*) FROM {table} WHERE market_id = %s AND timeframe = %s", [market_id, timeframe]
        ).fetchone()[0]
        for lo in range(0, total, CHUNK):
            hi = min(lo + CHUNK, total)
            values = ohlcv[lo:hi].tolist()
            times = ts[lo:hi].tolist()
            cur.executemany(sql, [(market_id, timeframe, t, *v) for t, v in zip(times, values, strict=True)])
            if progress:
                progress(hi, total)
        after = cur.execute(
            f"SELECT COUNT(*) FROM {table} WHERE market_id = %s AND timeframe = %s", [market_id, timeframe]
        ).fetchone()[0]
    return after - before


def read(
    *,
    market_id: int,
    timeframe: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
    newest: int | None = None,
    table: str = TABLE,
) -> tuple[np.ndarray, np.ndarray]:
    """Candles with ``start_ms <= open_time < end_ms``, oldest first (only the last ``newest`` if given).

    Returns ``(ts, ohlcv)``: int64 open times (ms) and a float64 (n, 5) array.
    """
    _check_table(table)
    where = ["market_id = %s", "timeframe = %s"]
    params: list[object] = [market_id, timeframe]
    if start_ms is not None:
        where.append("open_time >= %s")
        params.append(int(start_ms))
    if end_ms is not None:
        where.append("open_time < %s")
        params.append(int(end_ms))
    select = f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE {' AND '.join(where)}"
    if newest is not None:
        # The newest N via a backward index scan (re-ordered oldest first below).
        select += " ORDER BY open_time DESC LIMIT %s"
        params.append(int(newest))
    if _is_postgres():
        # No ORDER BY for a plain range: PostgreSQL would sort up to a year of
        # rows (spilling to disk at the default work_mem); numpy sorts the
        # already nearly ordered timestamps in milliseconds instead.
        return _read_postgres(select, params)
    query = select if newest is not None else select + " ORDER BY open_time"
    if newest is not None:
        query = f"SELECT * FROM ({select}) AS newest ORDER BY open_time"
    with connection.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty((0, 5), dtype=np.float64)
    data = np.array(rows, dtype=np.float64)  # ms times < 2**53: exact in float64
    return data[:, 0].astype(np.int64), np.ascontiguousarray(data[:, 1:])


_ARRAY_HEADER = 20  # ndim, flags, element oid, then one dimension: size, lower bound
_ARRAY_ITEM = np.dtype([("length", ">i4"), ("value", ">f8")])
_ARRAY_ITEM_INT = np.dtype([("length", ">i4"), ("value", ">i8")])
INT8_ARRAY_OID, FLOAT8_ARRAY_OID = 1016, 1022


def _read_postgres(query: str, params: list[object]) -> tuple[np.ndarray, np.ndarray]:
    """One row of six binary arrays, decoded by numpy in place of 3 million Python floats.

    Rows come in storage order and are sorted by open time here. ``array_agg``
    over the subquery returns each column as a PostgreSQL
    binary array (4-byte length + 8-byte value per element); a raw-bytes loader
    on this cursor hands those bytes to ``np.frombuffer``.
    """
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    class RawBytes(Loader):
        format = Format.BINARY

        def load(self, data):
            return bytes(data)

    aggregated = f"SELECT {', '.join(f'array_agg({c})' for c in COLUMNS)} FROM ({query}) AS candles"
    import psycopg

    connection.ensure_connection()
    # A plain server-binding cursor: Django's default client-side cursor cannot return binary results.
    with psycopg.Cursor(connection.connection) as cur:
        cur.adapters.register_loader(INT8_ARRAY_OID, RawBytes)
        cur.adapters.register_loader(FLOAT8_ARRAY_OID, RawBytes)
        cur.execute(aggregated, params, binary=True)
        row = cur.fetchone()
    if row is None or row[0] is None:
        return np.empty(0, dtype=np.int64), np.empty((0, 5), dtype=np.float64)
    ts = np.frombuffer(row[0], dtype=_ARRAY_ITEM_INT, offset=_ARRAY_HEADER)["value"].astype(np.int64)
    ohlcv = np.empty((len(ts), 5), dtype=np.float64)
    for i, raw in enumerate(row[1:]):
        ohlcv[:, i] = np.frombuffer(raw, dtype=_ARRAY_ITEM, offset=_ARRAY_HEADER)["value"]
    if len(ts) > 1 and not (np.diff(ts) > 0).all():
        order = np.argsort(ts, kind="stable")
        ts, ohlcv = ts[order], ohlcv[order]
    return ts, ohlcv


def stored_range(*, market_id: int, timeframe: str, table: str = TABLE) -> tuple[int, int, int] | None:
    """(first open time, last open time, count) or None when nothing is stored."""
    _check_table(table)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT MIN(open_time), MAX(open_time), COUNT(*) FROM {table} WHERE market_id = %s AND timeframe = %s",
            [market_id, timeframe],
        )
        first, last, count = cur.fetchone()
    return None if not count else (int(first), int(last), int(count))


def last_open_time(*, market_id: int, timeframe: str, table: str = TABLE) -> int | None:
    _check_table(table)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT open_time FROM {table} WHERE market_id = %s AND timeframe = %s "
            "ORDER BY open_time DESC LIMIT 1",
            [market_id, timeframe],
        )
        row = cur.fetchone()
    return None if row is None else int(row[0])
