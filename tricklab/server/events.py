"""Reading a job's event stream (status, progress, metrics, epoch, ...) for the API's
Server-Sent Events, over redis.asyncio: a viewer blocked in XREAD holds a connection,
not a thread. Writers are the Lua scripts (status) and the worker's reporter
(Store.emit)."""

from __future__ import annotations

import json
from typing import Any

from tricklab.contract import TERMINAL
from tricklab.server.keyspace import Keyspace

Event = tuple[str, str, dict]  # (stream id, type, data)


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
    return [
        (eid, fields["type"], json.loads(fields["data"]))
        for _stream, entries in res or []
        for eid, fields in entries
    ]


async def is_terminal(ar: Any, keys: Keyspace, job_id: str) -> bool:
    return await ar.hget(keys.job(job_id), "status") in TERMINAL
