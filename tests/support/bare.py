"""`BareApi`: an API process without a worker (support.processes.launch_api) and a Store on
its Redis, for tests that claim and finish jobs by hand, as a worker would."""

from __future__ import annotations

import time

import httpx

from support.processes import ApiProc
from tricklab.server.connection import connect
from tricklab.server.store import Store
from tricklab.settings import Settings

DAY = 86400.0


class BareApi:
    def __init__(self, p: ApiProc) -> None:
        self.url, self.redis_url, self.artifact_dir, self.proc = (
            p.url,
            p.redis_url,
            p.artifact_dir,
            p.proc,
        )
        self.r = connect(p.redis_url)
        self.store = Store(self.r, "tl")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def settings(self, **kw) -> Settings:
        """The API's settings as a retention round run by hand needs them."""
        return Settings(REDIS_URL=self.redis_url, ARTIFACT_DIR=str(self.artifact_dir), **kw)

    def claim(self, job_id: str) -> int:
        """Claim a queued job as a worker would; its attempt number."""
        attempt, st = self.store.claim(job_id, "test-worker", lease_s=60, max_attempts=3)
        assert attempt, st
        return attempt

    def finish(self, job_id: str, status: str = "succeeded") -> None:
        """Claim a queued job and end it at once with `status`."""
        assert self.store.finish(job_id, self.claim(job_id), status)

    def age(self, job_id: str, days: float) -> None:
        """Make a finished job look finished `days` ago."""
        self.r.hset(f"tl:job:{job_id}", "finished_at", f"{time.time() - days * DAY:.6f}")
