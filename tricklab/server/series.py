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

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BLOCK = 256  # raw records per summary block
REC = np.dtype([("step", "<u4"), ("value", "<f8")])  # packed: 12 bytes
SUMMARY = np.dtype([("first", REC), ("min", REC), ("max", REC), ("last", REC)])  # 48 bytes
MAX_STEP = 2**32 - 1
_TAIL = 2 * BLOCK  # raw records fetched from the end in a read's first round trip
# Use summaries when a bucket spans at least this many raw points; buckets are then
# rounded to whole blocks (2+ per bucket), which a plotted curve does not show.
_SUMMARY_SPAN = 2 * BLOCK
_MAX_ROUNDS = 6

_EMPTY = np.empty(0, REC)


def names_key(prefix: str) -> str:
    return f"{prefix}:names"


def raw_key(prefix: str, name: str) -> str:
    return f"{prefix}:{name}:r"


def summary_key(prefix: str, name: str) -> str:
    return f"{prefix}:{name}:b"


# One round trip: names, raw length, summary length and the raw records of the last
# (partial) block — or the last record when the last block is complete.
_LOAD_LUA = """
local out = {}
local B = tonumber(ARGV[2])
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local raw = ARGV[1] .. ':' .. name .. ':r'
  local nbytes = redis.call('STRLEN', raw)
  local n = math.floor(nbytes / 12)
  local start = math.floor(n / B) * B
  if start == n and n > 0 then start = n - 1 end
  local tail = ''
  if n > 0 then tail = redis.call('GETRANGE', raw, start * 12, n * 12 - 1) end
  out[#out + 1] = name
  out[#out + 1] = n
  out[#out + 1] = redis.call('STRLEN', ARGV[1] .. ':' .. name .. ':b')
  out[#out + 1] = tail
end
return out
"""

_DELETE_LUA = """
local names = redis.call('SMEMBERS', KEYS[1])
for _, name in ipairs(names) do
  redis.call('UNLINK', ARGV[1] .. ':' .. name .. ':r', ARGV[1] .. ':' .. name .. ':b')
end
redis.call('UNLINK', KEYS[1])
return #names
"""


def _records(buf: bytes | None) -> np.ndarray:
    if not buf:
        return _EMPTY
    return np.frombuffer(buf, REC, count=len(buf) // REC.itemsize)


def _summarize(blocks: np.ndarray) -> np.ndarray:
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


@dataclass
class _Tail:
    n: int = 0  # records stored
    last: int = -1  # last stored step
    partial: np.ndarray = field(default_factory=lambda: _EMPTY)  # records of the open block


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
        """Learn every series' length, last step and open block (one round trip)."""
        reply = self.redis.eval(_LOAD_LUA, 1, names_key(self.prefix), self.prefix, BLOCK)
        tails: dict[str, _Tail] = {}
        lagging: list[tuple[str, int, int]] = []
        for i in range(0, len(reply), 4):
            name = _text(reply[i])
            n, sum_bytes, recs = int(reply[i + 1]), int(reply[i + 2]), _records(reply[i + 3])
            last = int(recs["step"][-1]) if len(recs) else -1
            partial = recs if n % BLOCK else _EMPTY
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
            blocks = _records(buf).reshape(k1 - k0, BLOCK)
            sk = summary_key(self.prefix, name)
            pipe.setrange(sk, k0 * SUMMARY.itemsize, _summarize(blocks).tobytes())
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
            summaries = _summarize(buf[: full * BLOCK].reshape(full, BLOCK))
            offset = (tail.n // BLOCK) * SUMMARY.itemsize
            pipe.setrange(summary_key(self.prefix, name), offset, summaries.tobytes())
        tail.partial = buf[full * BLOCK :].copy()
        tail.n += len(recs)
        tail.last = int(s[-1])


def _text(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


def _check_binary(redis: Any) -> None:
    try:
        decodes = redis.get_encoder().decode_responses
    except AttributeError:
        return
    if decodes:
        raise ValueError(
            "tricklab.server.series needs a Redis client with decode_responses=False "
            "(series are binary); make a second client for it"
        )


# ---------------------------------------------------------------- reading


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
        return np.concatenate(pieces) if pieces else _EMPTY

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
        names = sorted(_text(m) for m in members)
    reads = [_Read(name) for name in names]
    first = yield [
        cmd
        for r in reads
        for cmd in (
            ("STRLEN", raw_key(prefix, r.name)),
            ("GETRANGE", raw_key(prefix, r.name), -_TAIL * REC.itemsize, -1),
        )
    ]
    for r, nbytes, tail in zip(reads, first[::2], first[1::2], strict=True):
        r.n = int(nbytes) // REC.itemsize
        recs = _records(tail)  # same MULTI as STRLEN, so it ends at record n
        r.segments.append((r.n - len(recs), recs))

    for _ in range(_MAX_ROUNDS):
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
    recs = _records(reply)
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
        r.result = _EMPTY
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
        r.result = _EMPTY
        return []
    if max_points is None or m <= max_points:
        seg = r.raw(i0, n)
        if seg is None:
            return _fetch(prefix, r, i0, n)
        r.result = seg
        return []
    nb = max(1, (max_points - 2) // 2) if max_points >= 4 else 0
    if nb and m / nb >= _SUMMARY_SPAN:
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
        recs = r.result if r.result is not None else _EMPTY
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
    _check_binary(redis)
    return _run_sync(redis, _read_plan(prefix, names, since, max_points))


async def aread_series(
    redis: Any,
    prefix: str,
    names: list[str] | None = None,
    since: int | None = None,
    max_points: int | None = None,
) -> dict:
    """``read_series`` for a ``redis.asyncio`` client."""
    _check_binary(redis)
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
    return sorted(_text(m) for m in redis.smembers(names_key(prefix)))


def delete_series(redis_or_pipe: Any, prefix: str) -> None:
    """Delete every series under ``prefix`` (works on a client or queued on a pipeline)."""
    redis_or_pipe.eval(_DELETE_LUA, 1, names_key(prefix), prefix)
