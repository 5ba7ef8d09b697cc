"""A job's attempts as a timeline (GET /jobs/{id}?include=attempts), rebuilt from its
event stream: no worker writes anything more for it.

Each attempt is what three kinds of event say about it:
- the claim: the `running` status event (lua/job_claim.lua), with the attempt number
  and the worker, at its stream id's time;
- the worker's `start` event of that attempt (worker/reporting.py on_start: device and
  `resumed_from_step`, null for a run that started at step 0). It carries no attempt
  number: it belongs to the attempt claimed last;
- the end: a `queued` status event with its reason (`preempted`, `worker lost`, `lease
  expired`), or a terminal status, with the attempt number it ended.

The stream is capped (events_maxlen entries, progress events included): the first
attempts of a long job may have lost their events, and come back with their number
only (every other field null), so the list always has one entry per attempt the record
counts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tricklab.contract import TERMINAL

Attempt = dict[str, Any]


def _at(stream_id: str) -> str:
    """The time a stream id was written (its milliseconds part), ISO 8601 UTC."""
    ms = int(stream_id.split("-", 1)[0])
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _blank(n: int) -> Attempt:
    return {
        "attempt": n,
        "claimed_at": None,
        "worker": None,
        "device": None,
        "resumed_from_step": None,
        "ended_at": None,
        "ended": None,
    }


def build_attempts(events: list[tuple[str, str, dict]], attempts: int) -> list[Attempt]:
    """One entry per attempt 1..attempts from (stream id, type, data) events, oldest first."""
    by_n: dict[int, Attempt] = {}
    current: Attempt | None = None  # the attempt claimed last: a `start` event is its
    for eid, kind, data in events:
        if kind == "start" and current is not None and current["device"] is None:
            step = data.get("resumed_from_step")
            current["resumed_from_step"] = step if isinstance(step, int) else None
            current["device"] = data.get("device")
            continue
        if kind != "status" or not isinstance(data.get("attempts"), int):
            continue
        n, status = data["attempts"], data.get("status")
        if n < 1:
            continue  # a queued job cancelled before any attempt
        a = by_n.setdefault(n, _blank(n))
        if status == "running":
            a.update(claimed_at=_at(eid), worker=data.get("worker"))
            current = a
        elif a["ended"] is None and (status == "queued" or status in TERMINAL):
            # a job failed past max_restarts names the attempt that already ended: kept
            a.update(ended_at=_at(eid), ended=data.get("reason") or status)
    return [by_n.get(n) or _blank(n) for n in range(1, attempts + 1)]


def read_events(entries: list[Any]) -> list[tuple[str, str, dict]]:
    """XRANGE entries of a job's event stream (decoded responses) as (id, type, data),
    keeping only the kinds build_attempts reads."""
    out = []
    for eid, fields in entries:
        if fields.get("type") in ("status", "start"):
            try:
                data = json.loads(fields.get("data") or "{}")
            except ValueError:
                continue
            if isinstance(data, dict):
                out.append((eid, fields["type"], data))
    return out


async def aread_attempts(ar: Any, events_key: str, attempts: int) -> list[Attempt]:
    """The timeline of a job with `attempts` attempts, over redis.asyncio (decoded)."""
    if attempts < 1:
        return []
    entries = await ar.xrange(events_key, "-", "+")
    return build_attempts(read_events(entries), attempts)
