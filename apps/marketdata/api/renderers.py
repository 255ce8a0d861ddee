from __future__ import annotations

import orjson
from rest_framework.renderers import JSONRenderer


class FastJSONRenderer(JSONRenderer):
    """orjson for the bulk candle endpoints: 5,000 candles encode in ~2 ms instead of ~15 ms.

    Same output as DRF's renderer for these payloads (lists, dicts, numbers,
    strings); numpy arrays are serialized natively.
    """

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def candle_rows_json(columns) -> bytes:
    """``[[t, o, h, l, c, v], ...]`` as JSON bytes straight from numpy columns.

    Each column is encoded by orjson in one call and the rows are spliced from
    the byte strings. Building 5,000 Python row lists instead made the garbage
    collector's full passes show up as 250-450 ms spikes in the endpoint's p95.
    """
    parts = [orjson.dumps(column, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",") for column in columns]
    if not parts or parts[0] == [b""]:
        return b"[]"
    return b"[[" + b"],[".join(map(b",".join, zip(*parts, strict=True))) + b"]]"
