"""Redis clients for the API, workers and tools, with timeouts that turn an outage into
a clear error (503 at the API) instead of a hang.

The API's async client has a bounded pool that waits a moment for a free connection and
then raises `PoolExhausted`, so "every connection is busy" reads as itself (a distinct
503) and never as "Redis is unreachable"."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import MaxConnectionsError

# Short timeouts so that a Redis outage becomes a clear 503 instead of a hang.
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "health_check_interval": 10,
}
# redis-py's own default size of an asyncio pool.
ASYNC_POOL_SIZE = 100
ASYNC_POOL_TIMEOUT_S = 2.0
NO_CONNECTION = "No connection available."  # BlockingConnectionPool, on its timeout


class PoolExhausted(MaxConnectionsError):
    """Every connection of a bounded pool stayed busy for the pool's whole wait."""

    def __init__(self, size: int, waited_s: float | None) -> None:
        super().__init__(
            f"all {size} connections of the Redis pool stayed busy for {waited_s or 0:g} s"
        )
        self.size = size
        self.waited_s = waited_s


class WaitingPool(aioredis.BlockingConnectionPool):
    """A BlockingConnectionPool whose timeout raises PoolExhausted (redis-py raises a
    plain ConnectionError, the same type as a refused connection)."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except redis.ConnectionError as e:
            # the pool's own wait timed out (asyncio.TimeoutError is TimeoutError), not a
            # connect that failed: redis-py raises this exact error for it and only for it
            if str(e) == NO_CONNECTION and isinstance(e.__cause__, TimeoutError):
                raise PoolExhausted(self.max_connections, self.timeout) from e
            raise


def connect(url: str, *, decode: bool = True) -> redis.Redis:
    """A sync client: text (for Store) or bytes (decode=False, for tricklab.server.series)."""
    return redis.Redis.from_url(
        url, decode_responses=decode, retry_on_timeout=False, **CLIENT_OPTIONS
    )


def connect_async(
    url: str,
    *,
    max_connections: int = ASYNC_POOL_SIZE,
    pool_timeout_s: float = ASYNC_POOL_TIMEOUT_S,
) -> Any:
    """A redis.asyncio text client, for async API routes: at most max_connections at once;
    a command waits up to pool_timeout_s for a free one, then raises PoolExhausted."""
    pool = WaitingPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        decode_responses=True,
        **CLIENT_OPTIONS,
    )
    return aioredis.Redis(connection_pool=pool)
