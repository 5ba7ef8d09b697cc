"""Appending to metric series: the SeriesWriter (no reads on the hot path) and delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tricklab.server import scripts
from tricklab.server.keyspace import Keyspace
from tricklab.server.series.records import (
    BLOCK,
    EMPTY,
    MAX_STEP,
    REC,
    SUMMARY,
    names_key,
    raw_key,
    records_of,
    summarize,
    summary_key,
    text,
)


@dataclass
class _Tail:
    n: int = 0  # records stored
    last: int = -1  # last stored step
    partial: np.ndarray = field(default_factory=lambda: EMPTY)  # records of the open block


class SeriesWriter:
    """Appends points for all metrics of one job; one writer per job at a time.

    The writer keeps each series' length, last step and open block in memory so that
    ``add`` needs no reads. If a pipeline it queued on fails, its state is ahead of
    Redis: make a new writer (``load`` re-reads the truth), as a resumed worker does.
    """

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._tails: dict[str, _Tail] | None = None

    def load(self) -> None:
        """Learn every series' length, last step and open block (two round trips: the
        names, then lua/series_load.lua over their keys)."""
        names = [text(m) for m in self.redis.smembers(names_key(self.prefix))]
        reply = _load_script(self.redis)(
            keys=Keyspace.series_keys(self.prefix, names), args=[BLOCK]
        )
        tails: dict[str, _Tail] = {}
        lagging: list[tuple[str, int, int]] = []
        for i, name in enumerate(names):
            n, sum_bytes, recs = (
                int(reply[3 * i]),
                int(reply[3 * i + 1]),
                records_of(reply[3 * i + 2]),
            )
            last = int(recs["step"][-1]) if len(recs) else -1
            partial = recs if n % BLOCK else EMPTY
            tails[name] = _Tail(n=n, last=last, partial=partial.copy())
            if sum_bytes // SUMMARY.itemsize < n // BLOCK:
                lagging.append((name, sum_bytes // SUMMARY.itemsize, n // BLOCK))
        if lagging:
            self._repair_summaries(lagging)
        self._tails = tails

    def _repair_summaries(self, lagging: list[tuple[str, int, int]]) -> None:
        # Rare: a crash between the raw APPEND and the summary SETRANGE.
        pipe = self.redis.pipeline(transaction=False)
        for name, k0, k1 in lagging:
            rk = raw_key(self.prefix, name)
            pipe.getrange(rk, k0 * BLOCK * REC.itemsize, k1 * BLOCK * REC.itemsize - 1)
        raws = pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for (name, k0, k1), buf in zip(lagging, raws, strict=True):
            blocks = records_of(buf).reshape(k1 - k0, BLOCK)
            sk = summary_key(self.prefix, name)
            pipe.setrange(sk, k0 * SUMMARY.itemsize, summarize(blocks).tobytes())
        pipe.execute()

    def last_step(self, name: str) -> int | None:
        """Last stored step of a series (None when empty); loads on first use."""
        if self._tails is None:
            self.load()
        assert self._tails is not None
        tail = self._tails.get(name)
        return None if tail is None or tail.last < 0 else tail.last

    def add(self, pipe: Any, name: str, steps: Sequence[int], values: Sequence[float]) -> None:
        """Queue the points on ``pipe``; points with step <= the last stored are dropped.

        No round trip of its own, except a one-time ``load`` if it was never called.
        """
        if self._tails is None:
            self.load()
        assert self._tails is not None
        s = np.asarray(steps, dtype=np.int64).reshape(-1)
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if s.shape != v.shape:
            raise ValueError(f"{name}: {len(s)} steps but {len(v)} values")
        if len(s) > 1 and np.any(np.diff(s) <= 0):
            raise ValueError(f"{name}: steps must be strictly increasing within a batch")
        tail = self._tails.get(name)
        if tail is None:
            tail = self._tails[name] = _Tail()
            pipe.sadd(names_key(self.prefix), name)
        keep = s > tail.last
        s, v = s[keep], v[keep]
        if not len(s):
            return
        if s[0] < 0 or s[-1] > MAX_STEP:
            raise ValueError(f"{name}: steps must lie in 0..{MAX_STEP}")
        recs = np.empty(len(s), REC)
        recs["step"] = s
        recs["value"] = v
        pipe.append(raw_key(self.prefix, name), recs.tobytes())
        buf = np.concatenate([tail.partial, recs]) if len(tail.partial) else recs
        full = len(buf) // BLOCK
        if full:
            summaries = summarize(buf[: full * BLOCK].reshape(full, BLOCK))
            offset = (tail.n // BLOCK) * SUMMARY.itemsize
            pipe.setrange(summary_key(self.prefix, name), offset, summaries.tobytes())
        tail.partial = buf[full * BLOCK :].copy()
        tail.n += len(recs)
        tail.last = int(s[-1])


def delete_series(redis: Any, prefix: str) -> None:
    """Delete every series under ``prefix``: read the names, then UNLINK them all at once."""
    names = [text(m) for m in redis.smembers(names_key(prefix))]
    redis.unlink(names_key(prefix), *Keyspace.series_keys(prefix, names))


def _load_script(redis: Any) -> Any:
    """lua/series_load.lua registered on this client (once per client)."""
    script = getattr(redis, "_tl_series_load", None)
    if script is None:
        script = scripts.register(redis, "series_load")
        redis._tl_series_load = script
    return script
