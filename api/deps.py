"""Dependencies as Annotated aliases; routes take what they need by type."""

from __future__ import annotations

from typing import Annotated

import redis
from celery import Celery
from fastapi import Depends, Request

from api.auth import PrincipalDep
from tricklab.settings import Settings
from tricklab.store import Store


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_redis(request: Request) -> redis.Redis:
    """Text client (decode_responses=True), the one the Store uses."""
    return request.app.state.redis


def get_series_redis(request: Request) -> redis.Redis:
    """Bytes client: tricklab.series reads packed binary values."""
    return request.app.state.redis_bytes


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


def get_tenant(principal: PrincipalDep) -> str:
    """The caller's tenant, from its API key (api/auth.py); "default" when auth is off."""
    return principal.tenant


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[Store, Depends(get_store)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
SeriesRedisDep = Annotated[redis.Redis, Depends(get_series_redis)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
TenantDep = Annotated[str, Depends(get_tenant)]
