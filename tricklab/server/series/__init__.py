"""Metric series: packed binary curves in Redis, sized for ~1,000,000 points per metric.

Layout, for a job prefix ``P`` (e.g. ``"job:{id}:s"``) and a metric name ``N``:

``P:names``  SET of metric names.
``P:N:r``    raw: append-only string of 12-byte little-endian records,
             ``uint32 step`` + ``float64 value``; steps strictly increasing.
             Record i sits at byte offset ``12*i``, so any index is one GETRANGE.
``P:N:b``    summary: one 48-byte record per *complete* block of ``BLOCK`` raw
             records, at offset ``48*k``: the block's first, min, max and last
             points (4 raw records). Written with SETRANGE, so re-writing is harmless.

Memory is ~12 bytes per point plus Redis' string pre-allocation (at most 1 MB per
key past 1 MB) and 48/BLOCK bytes of summary: ~13 bytes per point at 1M points.

A downsampled read (``max_points``) of a long range reads the summary (48 bytes per
block) plus at most two partial blocks of raw data, never the whole raw string.
Reads use at most a few pipelined round trips for all requested series together.

min/max rule (writer summaries and reader buckets agree): the minimum ignores NaN
(unless everything is NaN) and the maximum treats NaN as the largest value, so a
diverged loss shows up in a downsampled curve; ties go to the earliest step.

Non-finite values (NaN, +-inf) are stored as-is and come back as ``None`` from
``read_series``, because JSON has no NaN/Infinity.

The reader needs a Redis client that returns bytes (``decode_responses=False``).
"""

from tricklab.server.series.reader import aread_series, read_series, series_names
from tricklab.server.series.records import (
    BLOCK,
    MAX_STEP,
    REC,
    SUMMARY,
    names_key,
    raw_key,
    summary_key,
)
from tricklab.server.series.writer import SeriesWriter, delete_series

__all__ = [
    "BLOCK",
    "MAX_STEP",
    "REC",
    "SUMMARY",
    "SeriesWriter",
    "aread_series",
    "delete_series",
    "names_key",
    "raw_key",
    "read_series",
    "series_names",
    "summary_key",
]
