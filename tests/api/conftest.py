"""API-only fixtures: a private Redis database + uvicorn, no worker.

Jobs stay queued unless a test drives them through tricklab.server.store.Store, the way a
worker would (claim → heartbeat → finish). Redis database 1 keeps these keys and the
Celery messages apart from the `service` fixture's worker on database 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from support import Proc, launch_api, locs, minimal_spec, submit

from tricklab.server.connection import connect
from tricklab.server.store import Store

# Tests take these from support (minimal_spec(), locs); the names stay here for the
# ones that still import them from this conftest.
__all__ = ["EXAMPLE", "locs"]
EXAMPLE = minimal_spec()


@dataclass
class Api:
    url: str
    redis_url: str
    artifact_dir: Path
    proc: Proc
    store: Store
    max_upload_bytes: int

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)

    def bytes_redis(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.redis_url)

    def create_job(self, c: httpx.Client, **overrides) -> dict:
        """A queued job of minimal_spec(), with top-level sections replaced by `overrides`."""
        return submit(c, {**minimal_spec(), **overrides})

    def run_job(self, job_id: str, worker: str = "test-worker") -> int:
        """Claim the job as a worker would; returns the attempt number."""
        attempt, st = self.store.claim(job_id, worker, lease_s=60, max_attempts=3)
        assert attempt, st
        return attempt


@pytest.fixture(scope="session")
def api(redis_server, tmp_path_factory) -> Iterator[Api]:
    max_upload = 256 * 1024
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        1,
        "api-only",
        TRICKLAB_MAX_UPLOAD_BYTES=str(max_upload),
        TRICKLAB_MAX_BODY_BYTES=str(64 * 1024),
    )
    yield Api(
        p.url, p.redis_url, p.artifact_dir, p.proc, Store(connect(p.redis_url), "tl"), max_upload
    )
    p.proc.stop()


@pytest.fixture
def client(api: Api) -> Iterator[httpx.Client]:
    with api.client() as c:
        yield c
