"""Liveness and readiness: both `async def` on the event loop, never in a thread pool, so
heavy requests (api/heavy.py) or a full pool of sync handlers never delay them."""

from __future__ import annotations

import time
from typing import Any

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import AsyncRedisDep, SettingsDep, StoreDep
from api.errors import REDIS_DOWN, error_response
from api.schemas import ErrorPublic, HealthPublic, ReadyPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
async def read_health() -> dict[str, Any]:
    """Liveness: the process answers (Redis is not consulted)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyPublic,
    responses={503: {"model": ErrorPublic, "description": "Redis unreachable or no live worker"}},
)
async def read_ready(store: StoreDep, ar: AsyncRedisDep, settings: SettingsDep) -> Any:
    """Readiness: Redis answers and at least one worker sent a heartbeat recently."""
    try:  # the async client: Workers.alive's query, without a thread hop
        await ar.ping()
        since = time.time() - settings.worker_ttl_s
        workers = await ar.zcount(store.keys.workers, since, "+inf")
    except (redis.ConnectionError, redis.TimeoutError):
        return error_response(503, "redis_unavailable", REDIS_DOWN, {"redis": "unreachable"})
    if not workers:
        return error_response(
            503,
            "no_workers",
            f"Redis is up but no worker has sent a heartbeat in the last {settings.worker_ttl_s:g} s; "
            f"start one (celery -A worker.celery_app:app worker -Q cpu)",
            {"redis": "ok", "workers": 0},
        )
    return JSONResponse({"redis": "ok", "workers": int(workers)})
