"""The one submit path against a real service: sweeps advance with nobody reading them, and
a failed publish is logged while the job still runs.

A private cluster on Redis database 11 of the session's redis-server: one CPU worker and
two APIs, both with max_active_jobs 1. `api` publishes normally. `mute` connects as a
Redis user that may not LPUSH, so every publish it tries fails inside kombu, exactly as
with a broker that refuses writes, while its job records are written as usual; the
worker (the default user) and its reconciler publish those jobs again.

The sweep tests never GET /sweeps/{id} until the end: they follow the children's job
records (GET /jobs/{id}, a 404 while a child is pending).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis
from support import (
    LONG_TRAINING,
    Proc,
    free_port,
    plain_spec,
    service_env,
    start_api,
    start_worker,
    wait_for,
)

pytestmark = [pytest.mark.service, pytest.mark.slow]

DB = 11  # 0 service, 1 api, 5/6 security, 7 dashboard auth
MUTE_USER, MUTE_PASSWORD = "tricklab-nopublish", "nopublish-secret"
BASE = plain_spec()


@dataclass
class Cluster:
    api: str
    mute: str
    api_log: Path
    mute_log: Path
    worker: Proc

    def client(self, url: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=url or self.api, timeout=30)


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory) -> Iterator[Cluster]:
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    admin = redis.Redis.from_url(url)
    admin.flushdb()
    # every command on every key except the two that put a message on a Celery queue
    admin.execute_command(
        "ACL", "SETUSER", MUTE_USER, "reset", "on", f">{MUTE_PASSWORD}",
        "~*", "&*", "+@all", "-lpush", "-rpush",
    )  # fmt: skip
    art = tmp_path_factory.mktemp("submit-artifacts")
    logs = Path(os.environ.get("TRICKLAB_TEST_LOGS", tmp_path_factory.mktemp("submit-logs")))
    logs.mkdir(parents=True, exist_ok=True)
    env = service_env(
        url,
        art,
        TRICKLAB_MAX_ACTIVE_JOBS="1",
        TRICKLAB_RECONCILE_AFTER_S="1",
        OMP_NUM_THREADS="1",  # as the session service: one torch thread on 2 shared cores
    )
    mute_url = f"redis://{MUTE_USER}:{MUTE_PASSWORD}@127.0.0.1:{redis_server.port}/{DB}"
    procs: list[Proc] = []
    try:
        urls = []
        for name, redis_url in (("submit-api", url), ("submit-mute-api", mute_url)):
            port = free_port()
            procs.append(start_api({**env, "REDIS_URL": redis_url}, logs / f"{name}.log", port))
            urls.append(f"http://127.0.0.1:{port}")
        worker = start_worker(env, logs / "submit-worker.log", "submit")
        procs.append(worker)
        for u in urls:
            wait_for(lambda u=u: httpx.get(f"{u}/readyz", timeout=2).status_code == 200, 90)
        yield Cluster(
            urls[0], urls[1], logs / "submit-api.log", logs / "submit-mute-api.log", worker
        )
    finally:
        for p in reversed(procs):
            p.stop()
        admin.execute_command("ACL", "DELUSER", MUTE_USER)


def _ts(iso: str | None) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else float("inf")


def post_sweep(c: httpx.Client, grid: list[float], max_concurrent: int) -> tuple[dict, list[str]]:
    body = {
        "base": BASE,
        "grid": {"regularization.label_smoothing": grid},
        "seeds": 1,
        "max_concurrent": max_concurrent,
    }
    r = c.post("/sweeps", json=body)
    assert r.status_code == 201, r.text
    sweep = r.json()
    return sweep, [j["job_id"] for v in sweep["variants"] for j in v["jobs"]]


def wait_children(cluster: Cluster, c: httpx.Client, ids: list[str], timeout: float = 150):
    """Every child's job record once all succeeded; a pending child is a 404."""

    def done() -> list[dict] | None:
        jobs = []
        for i in ids:
            r = c.get(f"/jobs/{i}")
            if r.status_code == 404:
                return None
            jobs.append(r.json())
        assert all(j["status"] in ("queued", "running", "succeeded") for j in jobs), jobs
        return jobs if all(j["status"] == "succeeded" for j in jobs) else None

    try:
        return wait_for(done, timeout, 0.2, what="every sweep child to succeed")
    except TimeoutError:
        print("worker log:\n", cluster.worker.tail())
        raise


def most_alive(jobs: list[dict]) -> int:
    """The most children alive (created, not finished) at any child's creation."""
    spans = [(_ts(j["created_at"]), _ts(j["finished_at"])) for j in jobs]
    return max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)


def test_sweep_with_max_concurrent_one_completes_unread(cluster):
    with cluster.client() as c:
        sweep, ids = post_sweep(c, [0.0, 0.05, 0.1], max_concurrent=1)
        assert sweep["counts"]["pending"] == 2, sweep["counts"]
        jobs = wait_children(cluster, c, ids)
        assert most_alive(jobs) == 1
        assert c.get(f"/sweeps/{sweep['id']}").json()["status"] == "succeeded"


@pytest.mark.parametrize("blocker", ["queued", "running"])
def test_sweep_waiting_for_the_active_jobs_quota_starts_unread(cluster, blocker):
    """The tenant's one active job holds the quota; once it is cancelled, the sweep starts.

    queued: a job for the gpu queue, which no worker consumes, cancelled by the API alone,
    so only the reconciler can notice the free slot. running: a long CPU job, cancelled
    while it runs, so the worker's follow-ups see the finish (the reconciler backs them)."""
    with cluster.client() as c:
        spec = plain_spec(**LONG_TRAINING)  # runs until cancelled below
        if blocker == "queued":
            spec["training"]["device"] = "cuda"
        r = c.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
        block = r.json()["id"]
        if blocker == "running":
            wait_for(lambda: c.get(f"/jobs/{block}").json()["status"] == "running", 60, 0.1)

        sweep, ids = post_sweep(c, [0.0, 0.1], max_concurrent=2)
        assert sweep["counts"]["pending"] == 2, sweep["counts"]  # the quota is full
        assert c.post(f"/jobs/{block}/cancel").status_code == 202

        jobs = wait_children(cluster, c, ids)
        assert c.get(f"/jobs/{block}").json()["status"] == "cancelled"
        assert most_alive(jobs) == 1  # max_active_jobs 1 held throughout
        assert c.get(f"/sweeps/{sweep['id']}").json()["status"] == "succeeded"


def test_a_failed_publish_is_logged_and_the_job_still_runs(cluster):
    """Jobs, forks and sweep children share one behaviour when the broker refuses the
    publish: the API logs it, the record stays queued, the reconciler publishes it."""

    def logged(job_id: str) -> bool:
        text = cluster.mute_log.read_text(errors="replace")
        return f"could not publish job {job_id} to queue cpu" in text

    spec = plain_spec(checkpoint_every=1)
    with cluster.client(cluster.mute) as c:
        r = c.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
        parent = r.json()
        assert parent["status"] == "queued"
        wait_for(lambda: logged(parent["id"]), 10, what="the failed publish in the API log")
        parent = wait_for(
            lambda: (j := c.get(f"/jobs/{parent['id']}").json())["status"] == "succeeded" and j,
            120,
            0.2,
            what="the job to succeed, published by the reconciler",
        )

        r = c.post(f"/jobs/{parent['id']}/fork", json={"from_epoch": 1, "optimizer": {"lr": 0.2}})
        assert r.status_code == 201, r.text
        fork = r.json()
        assert fork["status"] == "queued" and fork["lineage"]["parent"] == parent["id"]
        wait_for(lambda: logged(fork["id"]), 10, what="the fork's failed publish in the API log")
        fork = wait_for(
            lambda: (j := c.get(f"/jobs/{fork['id']}").json())["status"] == "succeeded" and j,
            120,
            0.2,
            what="the fork to succeed, published by the reconciler",
        )

        sweep, ids = post_sweep(c, [0.0], max_concurrent=1)
        assert sweep["counts"]["queued"] == 1, sweep["counts"]
        wait_for(lambda: logged(ids[0]), 10, what="the sweep child's failed publish")
        wait_children(cluster, c, ids, timeout=120)
