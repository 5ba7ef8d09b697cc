"""Reading metric series: whole, since a step, or downsampled to max_points, in a few
pipelined round trips (sans-IO plan, run by a sync or an asyncio driver)."""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tricklab.server.series.records import (
    BLOCK,
    EMPTY,
    MAX_ROUNDS,
    REC,
    SUMMARY,
    SUMMARY_SPAN,
    TAIL,
    check_binary,
    names_key,
    raw_key,
    records_of,
    summary_key,
    text,
)


@dataclass
class _Read:
    name: str
    n: int = 0
    i0: int | None = None  # first index with step > since
    segments: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (start, records)
    summary: np.ndarray | None = None
    result: np.ndarray | None = None

    def raw(self, a: int, b: int) -> np.ndarray | None:
        """Records [a, b) if the fetched segments cover them, else None."""
        pieces, cur = [], a
        while cur < b:
            for start, recs in self.segments:
                if start <= cur < start + len(recs):
                    take = recs[cur - start : min(b, start + len(recs)) - start]
                    pieces.append(take)
                    cur += len(take)
                    break
            else:
                return None
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else EMPTY

    def gap(self, a: int, b: int) -> tuple[int, int]:
        """The first uncovered range inside [a, b)."""
        cur = a
        while True:
            for start, recs in self.segments:
                if start <= cur < start + len(recs):
                    cur = start + len(recs)
                    break
            else:
                nxt = [start for start, _ in self.segments if cur < start < b]
                return cur, min(nxt, default=b)

    @property
    def full_blocks(self) -> int:
        assert self.summary is not None
        return min(len(self.summary), self.n // BLOCK)


Command = tuple[Any, ...]
_Plan = Generator[list[Command], list[Any], dict]


def _read_plan(
    prefix: str, names: list[str] | None, since: int | None, max_points: int | None
) -> _Plan:
    """Sans-IO read: yields lists of Redis commands, receives their replies."""
    if max_points is not None and max_points < 1:
        raise ValueError("max_points must be at least 1")
    if names is None:
        (members,) = yield [("SMEMBERS", names_key(prefix))]
        names = sorted(text(m) for m in members)
    reads = [_Read(name) for name in names]
    first = yield [
        cmd
        for r in reads
        for cmd in (
            ("STRLEN", raw_key(prefix, r.name)),
            ("GETRANGE", raw_key(prefix, r.name), -TAIL * REC.itemsize, -1),
        )
    ]
    for r, nbytes, tail in zip(reads, first[::2], first[1::2], strict=True):
        r.n = int(nbytes) // REC.itemsize
        recs = records_of(tail)  # same MULTI as STRLEN, so it ends at record n
        r.segments.append((r.n - len(recs), recs))

    for _ in range(MAX_ROUNDS):
        todo = []
        for r in reads:
            if r.result is None:
                need = _advance(r, prefix, since, max_points)
                if need:
                    todo.append((r, need))
        if not todo:
            break
        replies = yield [cmd for _, need in todo for cmd, _ in need]
        it = iter(replies)
        for r, need in todo:
            for (cmd, handler), reply in zip(need, it, strict=False):
                handler(r, cmd, reply)
    else:
        raise RuntimeError("series changed while being read (deleted concurrently?)")

    return _response(reads, since)


def _on_summary(r: _Read, cmd: Command, reply: Any) -> None:
    r.summary = np.frombuffer(reply or b"", SUMMARY, count=len(reply or b"") // SUMMARY.itemsize)


def _on_raw(r: _Read, cmd: Command, reply: Any) -> None:
    recs = records_of(reply)
    if not len(recs):
        raise RuntimeError(f"series {r.name} shrank while being read (deleted concurrently?)")
    r.segments.append((cmd[2] // REC.itemsize, recs))


def _fetch(prefix: str, r: _Read, a: int, b: int) -> list:
    lo, hi = r.gap(a, b)
    return [
        (("GETRANGE", raw_key(prefix, r.name), lo * REC.itemsize, hi * REC.itemsize - 1), _on_raw)
    ]


def _advance(r: _Read, prefix: str, since: int | None, max_points: int | None) -> list:
    """Either finish ``r`` (set r.result) or return the commands it needs next."""
    if r.n == 0:
        r.result = EMPTY
        return []
    get_summary = [(("GET", summary_key(prefix, r.name)), _on_summary)]
    if r.i0 is None:
        tail_lo, tail = r.segments[0]
        if since is None:
            r.i0 = 0
        elif tail_lo == 0 or int(tail["step"][0]) <= since:
            r.i0 = tail_lo + int(np.searchsorted(tail["step"].astype(np.int64), since, "right"))
        elif r.summary is None:
            return get_summary
        else:
            # The first block whose last step is past `since` holds i0.
            nfull = r.full_blocks
            k = int(
                np.searchsorted(r.summary["last"]["step"][:nfull].astype(np.int64), since, "right")
            )
            lo, hi = k * BLOCK, (min((k + 1) * BLOCK, r.n) if k < nfull else r.n)
            if max_points is None or r.n - lo <= max_points + BLOCK:
                hi = r.n  # the whole range is small: fetch it in the same round trip
            seg = r.raw(lo, hi)
            if seg is None:
                return _fetch(prefix, r, lo, hi)
            r.i0 = lo + int(np.searchsorted(seg["step"].astype(np.int64), since, "right"))
    i0, n = r.i0, r.n
    m = n - i0
    if m <= 0:
        r.result = EMPTY
        return []
    if max_points is None or m <= max_points:
        seg = r.raw(i0, n)
        if seg is None:
            return _fetch(prefix, r, i0, n)
        r.result = seg
        return []
    nb = max(1, (max_points - 2) // 2) if max_points >= 4 else 0
    if nb and m / nb >= SUMMARY_SPAN:
        if r.summary is None:
            return get_summary
        kf, nfull = -(-i0 // BLOCK), r.full_blocks
        if kf < nfull:
            head, tail = r.raw(i0, kf * BLOCK), r.raw(nfull * BLOCK, n)
            if head is None:
                return _fetch(prefix, r, i0, kf * BLOCK)
            if tail is None:
                return _fetch(prefix, r, nfull * BLOCK, n)
            blocks = r.summary[kf:nfull]
            pos = np.concatenate(
                [
                    np.arange(i0, kf * BLOCK),
                    np.arange(kf, nfull) * BLOCK,
                    np.arange(nfull * BLOCK, n),
                ]
            )
            lows = np.concatenate([head, blocks["min"], tail])
            highs = np.concatenate([head, blocks["max"], tail])
            first = head[0] if len(head) else blocks["first"][0]
            last = tail[-1] if len(tail) else blocks["last"][-1]
            r.result = _downsample(pos - i0, lows, highs, first, last, m, nb, max_points)
            return []
    seg = r.raw(i0, n)
    if seg is None:
        return _fetch(prefix, r, i0, n)
    pos = np.arange(m)
    r.result = _downsample(pos, seg, seg, seg[0], seg[-1], m, nb, max_points)
    return []


def _downsample(
    pos: np.ndarray,
    lows: np.ndarray,
    highs: np.ndarray,
    first: np.void,
    last: np.void,
    m: int,
    nb: int,
    max_points: int,
) -> np.ndarray:
    """First, last, and per bucket the min of ``lows`` and max of ``highs``, by step.

    ``pos`` is each unit's offset in the range [0, m); buckets split it evenly.
    """
    ends = np.array([first, last], REC)
    if nb == 0:
        return ends[-max_points:] if max_points < 2 else ends
    bucket = pos * nb // m  # pos is sorted, so each bucket is one contiguous run
    starts = _group_starts(bucket)
    lv, hv = lows["value"], highs["value"]
    lnan, hnan = np.isnan(lv), np.isnan(hv)
    # min: NaN counts as +inf (so it loses unless the bucket is all NaN)
    lkey = np.where(lnan, np.inf, lv)
    pick_min = _first_where(
        bucket, lkey == _spread(np.minimum.reduceat(lkey, starts), starts, len(pos))
    )
    # max: NaN beats everything, +inf included
    hkey = np.where(hnan, np.inf, hv)
    top = _spread(np.maximum.reduceat(hkey, starts), starts, len(pos))
    has_nan = _spread(np.logical_or.reduceat(hnan, starts), starts, len(pos))
    pick_max = _first_where(bucket, (hkey == top) & (hnan | ~has_nan))
    points = np.concatenate([ends, lows[pick_min], highs[pick_max]])
    _, idx = np.unique(points["step"], return_index=True)  # sorted by step, deduplicated
    return points[idx]


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def _spread(per_group: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Per-group values repeated over each group's members."""
    return np.repeat(per_group, np.diff(np.r_[starts, n]))


def _first_where(bucket: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Index of the first True of ``mask`` in each bucket (every bucket has one)."""
    hits = np.flatnonzero(mask)
    return hits[_group_starts(bucket[hits])]


def _response(reads: list[_Read], since: int | None) -> dict:
    series: dict[str, dict[str, list]] = {}
    top = since
    for r in reads:
        recs = r.result if r.result is not None else EMPTY
        v = recs["value"].astype(np.float64)
        values: list[float | None] = v.tolist()
        if not np.isfinite(v).all():
            values = [x if math.isfinite(x) else None for x in values]
        series[r.name] = {"step": recs["step"].astype(np.int64).tolist(), "value": values}
        if len(recs):
            last = int(recs["step"][-1])
            top = last if top is None else max(top, last)
    return {"series": series, "next_since": top}


def _run_sync(redis: Any, plan: _Plan) -> dict:
    try:
        cmds = next(plan)
        while True:
            pipe = redis.pipeline(transaction=True)  # STRLEN and tail must agree
            for cmd in cmds:
                pipe.execute_command(*cmd)
            cmds = plan.send(pipe.execute())
    except StopIteration as stop:
        return stop.value


def read_series(
    redis: Any,
    prefix: str,
    names: list[str] | None = None,
    since: int | None = None,
    max_points: int | None = None,
) -> dict:
    """Read series as ``{"series": {name: {"step": [...], "value": [...]}}, "next_since": n}``.

    - names: None for all series; a requested name with no data gets empty lists.
    - since: only points with step > since; ``next_since`` is the largest step returned
      over all series, or ``since`` when nothing is new (None if there is nothing at all).
      The read is one snapshot (its lengths come from one MULTI), so polling with
      ``since = next_since`` misses nothing and repeats nothing *if the writer writes
      every point of a step in one MULTI/EXEC and steps in increasing order* — the
      rule worker.reporting follows (it holds an epoch's last log point back until
      that epoch's val_* points, which sit at the same step, are written with it).
      Series written after the fact at old steps (an lr range test's ``range_*``,
      written once when the test ends) are a full read's business, not a poll's.
    - max_points: at most this many points per series, keeping the first, last, the
      minimum and the maximum (min/max per bucket, in step order). Guaranteed for
      max_points >= 4; smaller values keep first and last (or only the last).
    - values: Python floats; non-finite values (NaN, +-inf) come back as None.
    """
    check_binary(redis)
    return _run_sync(redis, _read_plan(prefix, names, since, max_points))


async def aread_series(
    redis: Any,
    prefix: str,
    names: list[str] | None = None,
    since: int | None = None,
    max_points: int | None = None,
) -> dict:
    """``read_series`` for a ``redis.asyncio`` client."""
    check_binary(redis)
    plan = _read_plan(prefix, names, since, max_points)
    try:
        cmds = next(plan)
        while True:
            pipe = redis.pipeline(transaction=True)  # STRLEN and tail must agree
            for cmd in cmds:
                pipe.execute_command(*cmd)
            cmds = plan.send(await pipe.execute())
    except StopIteration as stop:
        return stop.value


def series_names(redis: Any, prefix: str) -> list[str]:
    """Names of the series stored under ``prefix``, sorted."""
    return sorted(text(m) for m in redis.smembers(names_key(prefix)))
