"""GET /jobs under any sort and filter: the runs table.

The default listing (newest first, no filter but status) pages straight through the
tenant's index (Store.list_jobs). A sort by a field path (`best.val_acc`,
`spec.optimizer.lr`, ...) or a filter by tag, name or sweep cannot use that index, so
`list_sorted` does this instead:

1. take the newest `scan_max` ids of the tenant's index (of the status asked for):
   that is the bound: sorts and filters see at most that many jobs (settings.list_scan_max,
   10,000 by default; `truncated` says when the tenant has more);
2. keep those in the tag's set (P:t:{tenant}:tag:{hex});
3. read just the fields the filter and the sort need, one pipelined HMGET per job, for
   the jobs this process has not read before in a finished state (what a listing
   reads of a finished job never changes: it is kept, per query shape, so a dashboard
   polling a sorted view of 10,000 jobs reads only the active ones again);
4. sort in Python: present values in the asked direction, missing values last, ties
   broken by id, newest first (so sweep children, whose ids share a time prefix, come
   in a stable order);
5. HGETALL only the page's jobs.

The cursor is opaque: "c" + base64url(JSON [sort, missing, rank, value, id]) of the last
row. The next page is every row strictly after it in the total order above, so paging
returns each job exactly once and in order under any sort, also while jobs are added
(a job added before the cursor's position is not shown: it was not there). Values that
change while paging (a running job's best.val_acc) can move a job across the cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tricklab.contract import TERMINAL
from tricklab.server.store import Store

__all__ = ["Sort", "SortKey", "decode_cursor", "encode_cursor", "list_sorted", "row_key"]

# Record fields read as JSON and walked by the rest of the path.
_JSON_ROOTS = ("spec", "best", "metrics", "progress", "plan")
# Record fields that are numbers (unix seconds or counts) stored as text.
_NUMBER_ROOTS = ("created_at", "started_at", "finished_at", "attempts")
_TEXT_ROOTS = ("name", "status", "queue", "sweep_id", "search_id", "variant")
# duration_s is computed: finished_at (or now, while running) - started_at.
ROOTS = (*_JSON_ROOTS, *_NUMBER_ROOTS, *_TEXT_ROOTS, "duration_s")

# rank of a value's kind, so that mixed kinds under one path still sort (numbers first)
_NUM, _STR, _OTHER = 0, 1, 2

SortKey = tuple[int, int, Any, str]  # (missing 0|1, rank, value, id)


@dataclass(frozen=True)
class Sort:
    """A validated sort: `path` ("best", "val_acc"), descending or not. text is the query form."""

    path: tuple[str, ...]
    desc: bool

    @property
    def text(self) -> str:
        return ("-" if self.desc else "") + ".".join(self.path)

    def fields(self) -> list[str]:
        """The record fields this sort reads."""
        root = self.path[0]
        return ["started_at", "finished_at"] if root == "duration_s" else [root]


def duration_s(started: Any, finished: Any, now: float | None = None) -> float | None:
    """Seconds from start to finish (or to now, while it runs); None before it started."""
    try:
        t0 = float(started) if started not in (None, "") else None
        t1 = float(finished) if finished not in (None, "") else None
    except ValueError:
        return None
    if t0 is None:
        return None
    return max(0.0, (t1 if t1 is not None else (now or time.time())) - t0)


def _typed(v: Any) -> tuple[int, int, Any]:
    """(missing, rank, comparable value) of one looked-up value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return (1, 0, 0)
    if isinstance(v, bool | int | float):
        return (0, _NUM, float(v))
    if isinstance(v, str):
        return (0, _STR, v)
    return (0, _OTHER, json.dumps(v, sort_keys=True))


def _lookup(sort: Sort, raw: dict[str, str | None], now: float) -> Any:
    root, rest = sort.path[0], sort.path[1:]
    if root == "duration_s":
        return duration_s(raw.get("started_at"), raw.get("finished_at"), now)
    text = raw.get(root)
    if text in (None, ""):
        return None
    if root in _NUMBER_ROOTS:
        try:
            return float(text)  # type: ignore[arg-type]
        except ValueError:
            return None
    if root in _TEXT_ROOTS:
        return text
    try:
        node: Any = json.loads(text)  # type: ignore[arg-type]
    except ValueError:
        return None
    for part in rest:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def row_key(sort: Sort | None, job_id: str, raw: dict[str, str | None], now: float) -> SortKey:
    """The row's place in the order; with no sort every row ties and the id decides."""
    if sort is None:
        return (0, _NUM, 0.0, job_id)
    missing, rank, value = _typed(_lookup(sort, raw, now))
    return (missing, rank, value, job_id)


def compare(a: SortKey, b: SortKey, desc: bool) -> int:
    """Present values first (in the sort's direction), missing ones last, then id descending."""
    if a[0] != b[0]:
        return -1 if a[0] < b[0] else 1
    if not a[0]:
        ka, kb = (a[1], a[2]), (b[1], b[2])
        if ka != kb:
            c = -1 if ka < kb else 1
            return -c if desc else c
    if a[3] != b[3]:
        return -1 if a[3] > b[3] else 1
    return 0


def encode_cursor(sort: Sort | None, key: SortKey) -> str:
    """Without a sort the cursor is the last id, as the default listing's is."""
    if sort is None:
        return key[3]
    blob = json.dumps([sort.text, *key], separators=(",", ":")).encode()
    return "c" + base64.urlsafe_b64encode(blob).decode().rstrip("=")


def decode_cursor(sort: Sort | None, cursor: str) -> SortKey:
    """The key a cursor holds; ValueError (with a message for the caller) when it is not one
    this sort made."""
    if sort is None:
        if cursor.startswith("c"):
            raise ValueError("this cursor belongs to a sorted listing: pass the same sort=")
        return (0, _NUM, 0.0, cursor)
    if not cursor.startswith("c"):
        raise ValueError(f"not a cursor of sort={sort.text}: pass the next_cursor it returned")
    try:
        text = cursor[1:]
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        raise ValueError("not a cursor this API returned: pass next_cursor unchanged") from None
    ok = (
        isinstance(data, list)
        and len(data) == 5
        and data[1] in (0, 1)
        and data[2] in (_NUM, _STR, _OTHER)
        and isinstance(data[4], str)
        and (
            data[1] == 1
            or (data[2] == _NUM and isinstance(data[3], int | float))
            or (data[2] != _NUM and isinstance(data[3], str))
        )
    )
    if not ok:
        raise ValueError("not a cursor this API returned: pass next_cursor unchanged")
    if data[0] != sort.text:
        raise ValueError(f"this cursor belongs to sort={data[0]}, not sort={sort.text}")
    missing, rank, value, job_id = data[1:]
    if missing:
        rank, value = 0, 0
    return (missing, rank, float(value) if rank == _NUM else value, job_id)


class _Rows:
    """What a listing read for finished jobs, per (Redis, tenant, query shape): a finished
    job's spec, best, metrics, name, sweep and duration never change, so a dashboard that
    polls the same sorted view reads only the active jobs again. Deleted jobs drop out
    with the index; LRU over query shapes."""

    def __init__(self, shapes: int = 32) -> None:
        self._by: OrderedDict[tuple, dict[str, tuple]] = OrderedDict()
        self._shapes = shapes
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict[str, tuple]:
        with self._lock:
            rows = self._by.get(key)
            if rows is not None:
                self._by.move_to_end(key)
            return dict(rows or {})

    def put(self, key: tuple, rows: dict[str, tuple]) -> None:
        with self._lock:
            self._by[key] = rows
            self._by.move_to_end(key)
            while len(self._by) > self._shapes:
                self._by.popitem(last=False)


_CACHE = _Rows()


def _where(store: Store) -> tuple:
    kw = store.r.connection_pool.connection_kwargs
    return (kw.get("host"), kw.get("port"), kw.get("path"), kw.get("db"), store.p)


def list_sorted(
    store: Store,
    *,
    tenant: str,
    status: str | None = None,
    sort: Sort | None = None,
    tag: str | None = None,
    q: str | None = None,
    sweep_id: str | None = None,
    search_id: str | None = None,
    limit: int = 50,
    cursor: SortKey | None = None,
    scan_max: int = 10_000,
) -> tuple[list[dict[str, Any]], str | None, bool]:
    """(jobs of the page, next_cursor, truncated): see the module docstring."""
    r, keys = store.r, store.keys
    index = keys.jobs(tenant, status)
    with r.pipeline(transaction=False) as pipe:
        pipe.zrevrange(index, 0, scan_max - 1)
        pipe.zcard(index)
        if tag is not None:
            pipe.smembers(keys.job_tag(tenant, tag))
        got = pipe.execute()
    ids: list[str] = got[0]
    truncated = int(got[1]) > scan_max
    if tag is not None:
        tagged = got[2]
        ids = [i for i in ids if i in tagged]

    # per job: (sort key, name, sweep_id, search_id); read for the jobs not cached
    extra = [
        *(["name"] if q else []),
        *(["sweep_id"] if sweep_id else []),
        *(["search_id"] if search_id else []),
    ]
    fields = sorted({*(sort.fields() if sort else []), *extra, "status"})
    shape = (_where(store), tenant, sort.path if sort else None, tuple(extra))
    known = _CACHE.get(shape)
    todo = [i for i in ids if i not in known]
    with r.pipeline(transaction=False) as pipe:
        for i in todo:
            pipe.hmget(keys.job(i), fields)
        values = pipe.execute() if todo else []
    now = time.time()
    rows: dict[str, tuple] = {i: known[i] for i in ids if i in known}
    fresh: dict[str, tuple] = {}
    for job_id, vals in zip(todo, values, strict=True):
        raw = dict(zip(fields, vals, strict=True))
        if raw["status"] is None:
            continue  # the record is gone (deleted since the index was read)
        row = (
            row_key(sort, job_id, raw, now),
            raw.get("name") or "",
            raw.get("sweep_id"),
            raw.get("search_id"),
        )
        fresh[job_id] = row
        if raw["status"] in TERMINAL:
            rows[job_id] = row
    _CACHE.put(shape, dict(rows))  # finished jobs only, and only those still in the index
    rows.update(fresh)

    needle = q.casefold() if q else None
    keys_: list[SortKey] = []
    for job_id in ids:
        found = rows.get(job_id)
        if found is None:
            continue
        row = found
        if needle is not None and needle not in row[1].casefold():
            if needle not in job_id.casefold():
                continue
        if sweep_id is not None and row[2] != sweep_id:
            continue
        if search_id is not None and row[3] != search_id:
            continue
        keys_.append(row[0])

    ordered = _ordered(keys_, bool(sort and sort.desc))
    if cursor is not None:
        desc = bool(sort and sort.desc)
        ordered = [k for k in ordered if compare(k, cursor, desc) > 0]
    page = ordered[:limit]
    more = len(ordered) > limit
    by_id = {j["id"]: j for j in store.get_jobs([k[3] for k in page])}
    jobs = [by_id[k[3]] for k in page if k[3] in by_id]
    next_cursor = encode_cursor(sort, page[-1]) if more and page else None
    return jobs, next_cursor, truncated


def _ordered(rows: list[SortKey], desc: bool) -> list[SortKey]:
    """The order of `compare`, by two stable sorts (no Python comparator: 10,000 rows in a
    few ms): newest id first, then by value in the sort's direction (reverse=True keeps
    equal values in their order); missing values after, newest first."""
    present = sorted((k for k in rows if not k[0]), key=lambda k: k[3], reverse=True)
    present.sort(key=lambda k: (k[1], k[2]), reverse=desc)
    missing = sorted((k for k in rows if k[0]), key=lambda k: k[3], reverse=True)
    return present + missing
