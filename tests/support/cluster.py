"""The reliability tests' private cluster: its own Redis (AOF, fsync always), an API, and
workers that tests start, kill -9 and restart. Short leases, so recovery takes seconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.processes import Proc, RedisServer, service_env, start_worker
from support.waiting import wait_for

LEASE_TTL_S = 3.0
MAX_RESTARTS = 2


def cluster_env(redis_url: str, artifact_dir: Path) -> dict[str, str]:
    return service_env(
        redis_url,
        artifact_dir,
        TRICKLAB_LEASE_TTL_S=str(LEASE_TTL_S),
        TRICKLAB_WORKER_TTL_S="3",
        TRICKLAB_MAX_RESTARTS=str(MAX_RESTARTS),
        TRICKLAB_RECONCILE_AFTER_S="2",
        OMP_NUM_THREADS="1",
    )


@dataclass
class Cluster:
    redis: RedisServer
    api: Proc
    api_url: str
    env: dict[str, str]
    logs: Path
    artifact_dir: Path
    workers: list[Proc] = field(default_factory=list)
    n: int = 0

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30)

    def add_worker(self, name: str | None = None, **env: str) -> Proc:
        self.n += 1
        name = name or f"r{self.n}"
        w = start_worker(dict(self.env, **env), self.logs / f"{name}.log", name)
        w.name = name  # type: ignore[attr-defined]
        self.workers.append(w)
        return w

    def wait_ready(self, worker: Proc, timeout: float = 60) -> None:
        name = worker.name  # type: ignore[attr-defined]
        r = self.redis.client()
        wait_for(
            lambda: any(m.startswith(name + "@") for m in r.zrange("tl:workers", 0, -1)),
            timeout,
            0.1,
            what=f"worker {name} heartbeat",
        )

    def stop_workers(self) -> None:
        for w in self.workers:
            w.stop(10)
        self.workers.clear()
        # a clean slate: no worker heartbeat or reconciler state carries over
        r = self.redis.client()
        r.delete("tl:workers", "tl:reconcile:lock", "tl:reconcile:missing", "cpu")
