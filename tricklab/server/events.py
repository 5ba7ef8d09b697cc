"""Reading jobs' event streams (status, progress, metrics, epoch, ...) for the API's
Server-Sent Events, over redis.asyncio. Writers are the Lua scripts (status) and the
worker's reporter (Store.emit).

The API's stream hub (api/stream_hub.py) blocks in one XREAD over the streams of every
job someone watches (decoding with `decode`), so a viewer holds no connection while it
waits; `read_range` fills a viewer's gap up to where the hub stands."""

from __future__ import annotations

import json
from typing import Any

from tricklab.contract import TERMINAL
from tricklab.server.keyspace import Keyspace

Event = tuple[str, str, dict]  # (stream id, type, data)


def decode(entries: list[Any]) -> list[Event]:
    return [(eid, fields["type"], json.loads(fields["data"])) for eid, fields in entries]


async def read(
    ar: Any,
    keys: Keyspace,
    job_id: str,
    last_id: str = "0-0",
    block_ms: int | None = None,
    count: int = 500,
) -> list[Event]:
    """The job's events after last_id, waiting up to block_ms for the first one."""
    res = await ar.xread({keys.job_events(job_id): last_id}, count=count, block=block_ms)
    return [ev for _stream, entries in res or [] for ev in decode(entries)]


async def read_range(
    ar: Any, keys: Keyspace, job_id: str, after: str, upto: str, count: int = 500
) -> list[Event]:
    """The job's events with after < id <= upto, at most `count` (the oldest ones)."""
    entries = await ar.xrange(keys.job_events(job_id), min=f"({after}", max=upto, count=count)
    return decode(entries)


async def is_terminal(ar: Any, keys: Keyspace, job_id: str) -> bool:
    return await ar.hget(keys.job(job_id), "status") in TERMINAL


async def finished(ar: Any, keys: Keyspace, job_ids: list[str]) -> set[str]:
    """The jobs among job_ids that are terminal or whose record is gone (one pipeline)."""
    if not job_ids:
        return set()
    async with ar.pipeline(transaction=False) as pipe:
        for j in job_ids:
            pipe.hget(keys.job(j), "status")
        statuses = await pipe.execute()
    return {j for j, s in zip(job_ids, statuses, strict=True) if s is None or s in TERMINAL}
