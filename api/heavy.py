"""A bounded pool for CPU-heavy request work, so one tenant cannot stall the API.

FastAPI runs every sync route and dependency in one shared thread pool (anyio's, 40
threads). Sixty concurrent previews of a 10M-step schedule once filled it and /healthz
waited 79 s behind them. Heavy handlers (POST /schedules/preview, GET /jobs/{id}/lr, and
the parse of a POST /datasets upload, which takes seconds to minutes of CPU for a big
file) are `async def` and hand their work, JSON rendering included, to this pool instead:

- `heavy_workers` threads run it; at most `heavy_queue` more requests wait for a thread.
  Past that the pool answers 503 `busy` with Retry-After at once, never queueing more.
- one tenant holds at most `heavy_per_tenant` of those places (running or waiting); past
  that it gets 429 `too_many_requests` with Retry-After, so others still get in.

A place is freed when the work really ends, not when its caller goes away: a client that
disconnects mid-preview does not make room for one more thread than the pool has. A
cancelled caller waits for work already running to end (work not yet started is dropped)
before its own cleanup runs, as Starlette's run_in_threadpool does: an ingest's staging
file is not removed under it.
Health, readiness and authentication never go through here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from api.errors import ApiError
from tricklab.settings import Settings

T = TypeVar("T")
RETRY_AFTER_S = 1


class HeavyPool:
    def __init__(self, workers: int, queue: int, per_tenant: int) -> None:
        self.workers, self.capacity = max(1, workers), max(1, workers) + max(0, queue)
        self.per_tenant = max(1, per_tenant)
        self._ex = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="heavy")
        self._lock = threading.Lock()  # released from the pool's threads
        self._held = 0
        self._by_tenant: dict[str, int] = {}

    @classmethod
    def of(cls, settings: Settings) -> HeavyPool:
        return cls(settings.heavy_workers, settings.heavy_queue, settings.heavy_per_tenant)

    @property
    def held(self) -> int:
        """Places taken now (running or waiting)."""
        return self._held

    async def run(self, tenant: str, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on the pool; 429 or 503 at once when there is no place for it."""
        self._admit(tenant)
        try:
            fut: Future[T] = self._ex.submit(fn, *args)
        except BaseException:
            self._release(tenant)
            raise
        fut.add_done_callback(lambda _: self._release(tenant))
        waiting = asyncio.wrap_future(fut)
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            fut.cancel()  # dropped if still queued; a running one is waited for
            await asyncio.wait([waiting])
            raise

    def _admit(self, tenant: str) -> None:
        with self._lock:
            mine = self._by_tenant.get(tenant, 0)
            if mine >= self.per_tenant:
                raise ApiError(
                    429,
                    "too_many_requests",
                    f"you have {mine} heavy requests (schedule previews, lr curves, dataset "
                    f"uploads being parsed) running or waiting, the limit "
                    f"(heavy_per_tenant) is {self.per_tenant}; wait for one to finish and "
                    f"retry in {RETRY_AFTER_S} s",
                    {"limit": "heavy_per_tenant", "heavy_per_tenant": self.per_tenant},
                    {"Retry-After": str(RETRY_AFTER_S)},
                )
            if self._held >= self.capacity:
                raise ApiError(
                    503,
                    "busy",
                    f"the API's compute pool is full ({self._held} previews, lr curves or dataset "
                    f"parses running or waiting: heavy_workers {self.workers} + heavy_queue "
                    f"{self.capacity - self.workers}); retry in {RETRY_AFTER_S} s",
                    {"pool": "heavy", "capacity": self.capacity},
                    {"Retry-After": str(RETRY_AFTER_S)},
                )
            self._held += 1
            self._by_tenant[tenant] = mine + 1

    def _release(self, tenant: str) -> None:
        with self._lock:
            self._held -= 1
            left = self._by_tenant.get(tenant, 1) - 1
            if left > 0:
                self._by_tenant[tenant] = left
            else:
                self._by_tenant.pop(tenant, None)

    def shutdown(self) -> None:
        self._ex.shutdown(wait=False, cancel_futures=True)


async def get_heavy(request: Request) -> HeavyPool:
    """The process's one pool, made on first use (on the event loop: no race)."""
    pool = getattr(request.app.state, "heavy", None)
    if pool is None:
        pool = request.app.state.heavy = HeavyPool.of(request.app.state.settings)
    return pool


HeavyDep = Annotated[HeavyPool, Depends(get_heavy)]
