"""A private cluster for the reliability tests: its own Redis (AOF, fsync always), an
API, and workers that tests start, kill -9 and restart. Short leases via the env, so
that recovery takes seconds. Nothing here is shared with the `service` fixture."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from rel_helpers import LEASE_TTL_S, MAX_RESTARTS  # noqa: E402
from support import (  # noqa: E402
    Proc,
    RedisServer,
    free_port,
    service_env,
    start_api,
    start_worker,
    wait_for,
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
        r = self.redis.client()
        wait_for(
            lambda: any(m.startswith(worker.name + "@") for m in r.zrange("tl:workers", 0, -1)),  # type: ignore[attr-defined]
            timeout,
            0.1,
            what=f"worker {worker.name} heartbeat",  # type: ignore[attr-defined]
        )

    def stop_workers(self) -> None:
        for w in self.workers:
            w.stop(10)
        self.workers.clear()
        # a clean slate: no worker heartbeat or reconciler state carries over
        r = self.redis.client()
        r.delete("tl:workers", "tl:reconcile:lock", "tl:reconcile:missing", "cpu")


@pytest.fixture(scope="package")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    rs = RedisServer(free_port(), tmp_path_factory.mktemp("rel-redis"), fsync="always")
    rs.start()
    art = tmp_path_factory.mktemp("rel-artifacts")
    logs = tmp_path_factory.mktemp("rel-logs")
    env = service_env(
        rs.url,
        art,
        TRICKLAB_LEASE_TTL_S=str(LEASE_TTL_S),
        TRICKLAB_WORKER_TTL_S="3",
        TRICKLAB_MAX_RESTARTS=str(MAX_RESTARTS),
        TRICKLAB_RECONCILE_AFTER_S="2",
        OMP_NUM_THREADS="1",
    )
    port = free_port()
    api = start_api(env, logs / "api.log", port)
    c = Cluster(rs, api, f"http://127.0.0.1:{port}", env, logs, art)
    wait_for(
        lambda: httpx.get(f"{c.api_url}/healthz", timeout=2).status_code == 200, 60, what="API"
    )
    yield c
    c.stop_workers()
    api.stop()
    rs.kill()


@pytest.fixture
def rel(cluster) -> Iterator[Cluster]:
    """The cluster, with no workers; the ones a test starts are stopped after it."""
    yield cluster
    if cluster.redis.proc is None or cluster.redis.proc.poll() is not None:
        cluster.redis.start()
    for w in cluster.workers:
        if w.proc and w.proc.poll() is None:
            w.signal(signal.SIGKILL)
            w.proc.wait(10)
        w.stop(1)
    cluster.workers.clear()
    cluster.stop_workers()


@pytest.fixture(scope="package")
def reference(cluster) -> dict:
    """The reliability spec run once, uninterrupted, by a real worker: the oracle for
    every interrupted run (same CPU, one thread, same code path). Also records the
    worker child's peak address space, for the memory-limit test."""
    from rel_helpers import spec, submit, terminal

    w = cluster.add_worker("ref")
    try:
        with cluster.client() as c:
            jid = submit(c, spec())
            done = terminal(c, jid, 120)
            assert done["status"] == "succeeded", done
            pid = int(cluster.redis.client().hget(f"tl:job:{jid}", "worker_pid"))
            peak_kb = next(
                int(line.split()[1])
                for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmPeak:")
            )
            return {"job": done, "peak_kb": peak_kb}
    finally:
        w.stop(10)
        cluster.workers.remove(w)
        cluster.stop_workers()
