"""Server-Sent Events: a job's status changes, progress and metric points as they happen.

Viewers wait on the process's stream hub (api/stream_hub.py), not on a Redis connection
of their own; each caller may hold at most `max_streams_per_key` open streams."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from redis.exceptions import MaxConnectionsError
from starlette.background import BackgroundTask

from api.auth import Principal, PrincipalDep
from api.deps import AsyncRedisDep, SettingsDep, StoreDep, StreamHubDep
from api.errors import POOL_EXHAUSTED, REDIS_DOWN, ApiError, not_found
from api.limits import check_stream_id
from api.routes.jobs import ERRORS
from api.stream_hub import StreamError, StreamHub
from tricklab.contract import TERMINAL
from tricklab.server import events as job_events
from tricklab.server.outcomes import JobNotFound

router = APIRouter(prefix="/jobs", tags=["jobs"])

# How often an idle stream wakes to check that its client is still there. Under uvicorn
# (ASGI spec 2.3) Starlette also cancels a stream at once when its client leaves.
IDLE_S = 5.0
KEEPALIVE_S = 15.0
FULL_RETRY_AFTER_S = 5  # Retry-After of the 429 past the open-stream cap


def sse(event_id: str | None, kind: str, data: Any) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def caller_of(p: Principal) -> str:
    """Whose open streams are counted: the API key, or the tenant when no key was sent."""
    return f"k:{p.key_id}" if p.key_id else f"t:{p.tenant}"


async def _events(
    hub: StreamHub, ar: Any, job_id: str, last: str, request: Request, release: Any
) -> AsyncIterator[str]:
    try:
        yield "retry: 2000\n\n"
        sent_at = time.monotonic()
        follow = hub.follow(ar, job_id, last, IDLE_S)
        async with contextlib.aclosing(follow) as batches:
            try:
                async for evs in batches:
                    for eid, kind, data in evs:
                        yield sse(eid, kind, data)
                        sent_at = time.monotonic()
                        if kind == "status" and data.get("status") in TERMINAL:
                            return
                    if not evs and time.monotonic() - sent_at >= KEEPALIVE_S:
                        yield ": keep-alive\n\n"
                        sent_at = time.monotonic()
                    if await request.is_disconnected():
                        return
            except MaxConnectionsError:
                data = {"code": "redis_pool_exhausted", "message": POOL_EXHAUSTED}
                yield sse(None, "error", data)
            except (StreamError, redis.ConnectionError, redis.TimeoutError):
                yield sse(None, "error", {"code": "redis_unavailable", "message": REDIS_DOWN})
    finally:
        release()


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
    principal: PrincipalDep,
    hub: StreamHubDep,
    settings: SettingsDep,
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
        await store.aget_job(aredis, job_id, principal.tenant)
    except JobNotFound:
        raise not_found("job", job_id) from None
    pending = await job_events.read(aredis, store.keys, job_id, start, None, 1)
    if not pending and await job_events.is_terminal(aredis, store.keys, job_id):
        # 204 tells an EventSource not to reconnect: there is nothing more to say.
        return Response(status_code=204)
    caller, cap = caller_of(principal), settings.max_streams_per_key
    token, n_open = await hub.open_slot(aredis, caller, cap)
    if token is None:
        raise ApiError(
            429,
            "too_many_streams",
            f"{n_open} event streams are open with this API key, the most allowed "
            f"(max_streams_per_key = {cap}, TRICKLAB_MAX_STREAMS_PER_KEY); close one "
            f"or retry in {FULL_RETRY_AFTER_S} s",
            {"limit": "max_streams_per_key", "max_streams_per_key": cap, "open": n_open},
            {"Retry-After": str(FULL_RETRY_AFTER_S)},
        )

    def release() -> None:  # idempotent: from the stream's end and after the response
        hub.close_slot(caller, token)

    return StreamingResponse(
        _events(hub, aredis, job_id, start, request, release),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(release),
    )
