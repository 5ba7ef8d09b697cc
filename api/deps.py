"""Dependencies as Annotated aliases; routes take what they need by type.

All are `async def`: FastAPI runs a sync dependency in the thread pool, one hop each.
"""

from __future__ import annotations

from typing import Annotated

import redis
import redis.asyncio as aioredis
from celery import Celery
from fastapi import Depends, Request

from api.auth import PrincipalDep
from api.stream_hub import StreamHub
from tricklab.server.store import Store
from tricklab.settings import Settings


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_redis(request: Request) -> redis.Redis:
    """Text client (decode_responses=True), the one the Store uses."""
    return request.app.state.redis


async def get_series_redis(request: Request) -> redis.Redis:
    """Bytes client: tricklab.server.series reads packed binary values."""
    return request.app.state.redis_bytes


async def get_celery(request: Request) -> Celery:
    return request.app.state.celery


async def get_async_redis(request: Request) -> aioredis.Redis:
    """Async text client for hot read paths that should not take a thread-pool hop."""
    return request.app.state.aredis


async def get_stream_hub(request: Request) -> StreamHub:
    """The process's one event-stream reader, made on first use on the app's event loop."""
    hub = getattr(request.app.state, "stream_hub", None)
    if hub is None:
        store: Store = request.app.state.store
        hub = request.app.state.stream_hub = StreamHub(
            request.app.state.settings.redis_url, store.keys
        )
    return hub


async def get_tenant(principal: PrincipalDep) -> str:
    """The caller's tenant, from its API key (api/auth.py); "default" when auth is off."""
    return principal.tenant


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[Store, Depends(get_store)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
SeriesRedisDep = Annotated[redis.Redis, Depends(get_series_redis)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
TenantDep = Annotated[str, Depends(get_tenant)]
AsyncRedisDep = Annotated[aioredis.Redis, Depends(get_async_redis)]
StreamHubDep = Annotated[StreamHub, Depends(get_stream_hub)]
