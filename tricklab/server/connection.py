"""Redis clients for the API, workers and tools, with timeouts that turn an outage into
a clear error (503 at the API) instead of a hang."""

from __future__ import annotations

from typing import Any

import redis

# Short timeouts so that a Redis outage becomes a clear 503 instead of a hang.
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "health_check_interval": 10,
}


def connect(url: str, *, decode: bool = True) -> redis.Redis:
    """A sync client: text (for Store) or bytes (decode=False, for tricklab.server.series)."""
    return redis.Redis.from_url(
        url, decode_responses=decode, retry_on_timeout=False, **CLIENT_OPTIONS
    )


def connect_async(url: str) -> Any:
    """A redis.asyncio text client, for async API routes."""
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url, decode_responses=True, **CLIENT_OPTIONS)
