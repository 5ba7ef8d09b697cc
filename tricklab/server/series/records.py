"""The packed record formats of a metric series and the helpers every part shares."""

from __future__ import annotations

from typing import Any

import numpy as np

from tricklab.server.keyspace import Keyspace

BLOCK = 256  # raw records per summary block
REC = np.dtype([("step", "<u4"), ("value", "<f8")])  # packed: 12 bytes
SUMMARY = np.dtype([("first", REC), ("min", REC), ("max", REC), ("last", REC)])  # 48 bytes
MAX_STEP = 2**32 - 1
TAIL = 2 * BLOCK  # raw records fetched from the end in a read's first round trip
# Use summaries when a bucket spans at least this many raw points; buckets are then
# rounded to whole blocks (2+ per bucket), which a plotted curve does not show.
SUMMARY_SPAN = 2 * BLOCK
MAX_ROUNDS = 6

EMPTY = np.empty(0, REC)


names_key = Keyspace.series_names
raw_key = Keyspace.series_raw
summary_key = Keyspace.series_summary


def records_of(buf: bytes | None) -> np.ndarray:
    if not buf:
        return EMPTY
    return np.frombuffer(buf, REC, count=len(buf) // REC.itemsize)


def summarize(blocks: np.ndarray) -> np.ndarray:
    """Summaries of complete blocks, ``blocks`` shaped (k, BLOCK) of REC."""
    v = blocks["value"]
    nan = np.isnan(v)
    imin = np.argmin(np.where(nan, np.inf, v), axis=1)
    imax = np.where(nan.any(axis=1), np.argmax(nan, axis=1), np.argmax(v, axis=1))
    rows = np.arange(len(blocks))
    out = np.empty(len(blocks), SUMMARY)
    out["first"] = blocks[:, 0]
    out["min"] = blocks[rows, imin]
    out["max"] = blocks[rows, imax]
    out["last"] = blocks[:, -1]
    return out


def text(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


def check_binary(redis: Any) -> None:
    try:
        decodes = redis.get_encoder().decode_responses
    except AttributeError:
        return
    if decodes:
        raise ValueError(
            "tricklab.server.series needs a Redis client with decode_responses=False "
            "(series are binary); make a second client for it"
        )
