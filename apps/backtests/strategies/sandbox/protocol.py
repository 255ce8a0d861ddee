"""Message framing between the web/worker process and the sandbox process.

A message is a JSON header plus named numeric arrays, written as::

    <8-byte big-endian header length><header JSON><raw array bytes ...>

The header lists each array's name, dtype and shape. Arrays are rebuilt with
``numpy.frombuffer`` from an allowlist of plain dtypes, so reading a message can
never execute code: the parent must not trust what a sandbox process sends
(that is why there is no pickle here).
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, BinaryIO

import numpy as np

_LENGTH = struct.Struct(">Q")
_DTYPES = {"i8": np.dtype("<i8"), "f8": np.dtype("<f8"), "b1": np.dtype("?")}
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_ARRAY_BYTES = 2 * 1024 * 1024 * 1024


class ProtocolError(Exception):
    """A malformed or truncated message."""


def _dtype_code(array: np.ndarray) -> str:
    for code, dtype in _DTYPES.items():
        if array.dtype == dtype:
            return code
    if array.dtype.kind in "iu":
        return "i8"
    if array.dtype.kind == "b":
        return "b1"
    return "f8"


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """Serialize one message."""
    specs = []
    blobs = []
    for name, array in (arrays or {}).items():
        code = _dtype_code(np.asarray(array))
        data = np.ascontiguousarray(array, dtype=_DTYPES[code])
        specs.append({"name": name, "dtype": code, "shape": list(data.shape)})
        blobs.append(data.tobytes())
    body = json.dumps({**header, "_arrays": specs}, separators=(",", ":"), allow_nan=True).encode()
    return b"".join([_LENGTH.pack(len(body)), body, *blobs])


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(min(remaining, 1 << 24))
        if not chunk:
            raise ProtocolError("connection closed in the middle of a message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(stream: BinaryIO) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """Read one message; None at a clean end of stream."""
    prefix = stream.read(_LENGTH.size)
    if not prefix:
        return None
    if len(prefix) < _LENGTH.size:
        prefix += _read_exact(stream, _LENGTH.size - len(prefix))
    (length,) = _LENGTH.unpack(prefix)
    if length > MAX_HEADER_BYTES:
        raise ProtocolError("message header too large")
    try:
        header = json.loads(_read_exact(stream, length))
    except ValueError as exc:
        raise ProtocolError(f"bad message header: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("bad message header")
    arrays: dict[str, np.ndarray] = {}
    for spec in header.pop("_arrays", []):
        try:
            dtype = _DTYPES[spec["dtype"]]
            shape = tuple(int(d) for d in spec["shape"])
            name = str(spec["name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError("bad array description") from exc
        if any(d < 0 for d in shape):
            raise ProtocolError("bad array shape")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES:
            raise ProtocolError("array too large")
        arrays[name] = np.frombuffer(_read_exact(stream, nbytes), dtype=dtype).reshape(shape)
    return header, arrays


def write_message(fd: int, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write one message to a raw file descriptor (no buffering layer to flush)."""
    data = memoryview(encode(header, arrays))
    while data:
        written = os.write(fd, data)
        data = data[written:]
