"""The reliability tests' private cluster (support.cluster): its own Redis (AOF, fsync
always), an API, and workers that tests start, kill -9 and restart. Nothing here is
shared with the `service` fixture."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import (
    Cluster,
    RedisServer,
    cluster_env,
    free_port,
    reliability_spec,
    start_api,
    submit,
    wait_done,
    wait_for,
)


@pytest.fixture(scope="package")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    rs = RedisServer(free_port(), tmp_path_factory.mktemp("rel-redis"), fsync="always")
    rs.start()
    art = tmp_path_factory.mktemp("rel-artifacts")
    logs = tmp_path_factory.mktemp("rel-logs")
    env = cluster_env(rs.url, art)
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
    w = cluster.add_worker("ref")
    try:
        with cluster.client() as c:
            jid = submit(c, reliability_spec())["id"]
            done = wait_done(c, jid, 120)
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
