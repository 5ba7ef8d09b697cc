"""Server-Sent Events: a job's status changes, progress and metric points as they happen."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from api.deps import AsyncRedisDep, StoreDep, TenantDep
from api.errors import REDIS_DOWN, not_found
from api.limits import check_stream_id
from api.routes.jobs import ERRORS
from tricklab.contract import TERMINAL
from tricklab.server import events as job_events
from tricklab.server.outcomes import JobNotFound
from tricklab.server.store import Store

router = APIRouter(prefix="/jobs", tags=["jobs"])

# Blocking reads stay below the Redis client's 5 s socket timeout.
BLOCK_MS = 2000
KEEPALIVE_S = 15.0


def sse(event_id: str | None, kind: str, data: Any) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _events(
    store: Store, ar: Any, job_id: str, last: str, request: Request
) -> AsyncIterator[str]:
    # redis.asyncio: a viewer waiting on XREAD BLOCK holds a connection, not a thread
    yield "retry: 2000\n\n"
    sent_at = time.monotonic()
    while True:
        try:
            evs = await job_events.read(ar, store.keys, job_id, last, BLOCK_MS)
            if not evs and await job_events.is_terminal(ar, store.keys, job_id):
                # Terminal, but an event may have landed since the read: drain, then stop.
                evs = await job_events.read(ar, store.keys, job_id, last, None)
                if not evs:
                    return
        except (redis.ConnectionError, redis.TimeoutError):
            yield sse(None, "error", {"code": "redis_unavailable", "message": REDIS_DOWN})
            return
        for eid, kind, data in evs:
            last = eid
            yield sse(eid, kind, data)
            sent_at = time.monotonic()
            if kind == "status" and data.get("status") in TERMINAL:
                return
        if not evs and time.monotonic() - sent_at >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            sent_at = time.monotonic()
        if await request.is_disconnected():
            return


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        **ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        204: {"description": "The job finished and every event was already delivered"},
    },
)
async def stream_job_events(
    job_id: str,
    request: Request,
    store: StoreDep,
    aredis: AsyncRedisDep,
    tenant: TenantDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[
        str | None, Query(description="Like the Last-Event-ID header: start after this event id.")
    ] = None,
) -> Response:
    """Stream a job's events (status, progress, metrics, ...) until it finishes; honours Last-Event-ID."""
    if last_event_id:
        start = check_stream_id(last_event_id, ["header", "Last-Event-ID"])
    elif after:
        start = check_stream_id(after, ["query", "after"])
    else:
        start = "0-0"
    try:
        await store.aget_job(aredis, job_id, tenant)
    except JobNotFound:
        raise not_found("job", job_id) from None
    pending = await job_events.read(aredis, store.keys, job_id, start, None, 1)
    if not pending and await job_events.is_terminal(aredis, store.keys, job_id):
        # 204 tells an EventSource not to reconnect: there is nothing more to say.
        return Response(status_code=204)
    return StreamingResponse(
        _events(store, aredis, job_id, start, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
