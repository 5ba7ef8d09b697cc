"""Cancel, SSE and preemption: the control paths between API, Redis and worker."""

from __future__ import annotations

import json
import signal
import time

import pytest
from service_helpers import (
    long_spec,
    small_spec,
    status_history,
    submit,
    wait_for,
    wait_running_with_progress,
    wait_status,
)

pytestmark = pytest.mark.service


@pytest.mark.slow
def test_cancel_running_job_stops_fast_and_stays_cancelled(service):
    with service.client() as c:
        job = submit(c, long_spec())
        wait_running_with_progress(c, job["id"])
        t0 = time.monotonic()
        r = c.post(f"/jobs/{job['id']}/cancel")
        assert r.status_code == 202, r.text
        done = wait_status(c, job["id"], ("cancelled", "succeeded", "failed"), timeout=10)
        elapsed = time.monotonic() - t0
        assert done["status"] == "cancelled", done
        assert elapsed < 2.0, f"cancel took {elapsed:.2f}s"
        time.sleep(0.5)
        assert c.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
        assert status_history(service.redis.url, job["id"]) == ["queued", "running", "cancelled"]
        assert c.post(f"/jobs/{job['id']}/cancel").status_code == 409


@pytest.mark.slow
def test_cancelled_queued_job_never_starts(service):
    with service.client() as c:
        blocker = submit(c, long_spec())
        wait_running_with_progress(c, blocker["id"])
        queued = submit(c, small_spec())
        assert c.get(f"/jobs/{queued['id']}").json()["status"] == "queued"
        assert c.post(f"/jobs/{queued['id']}/cancel").status_code == 202
        assert c.get(f"/jobs/{queued['id']}").json()["status"] == "cancelled"
        c.post(f"/jobs/{blocker['id']}/cancel")
        wait_status(c, blocker["id"], ("cancelled",), timeout=10)
        # The worker now receives the cancelled job's message; it must drop it.
        probe = submit(c, small_spec(epochs=2))
        wait_status(c, probe["id"], ("succeeded",))
        j = c.get(f"/jobs/{queued['id']}").json()
        assert j["status"] == "cancelled" and j["started_at"] is None and j["attempts"] == 0
        assert status_history(service.redis.url, queued["id"]) == ["queued", "cancelled"]


@pytest.mark.slow
def test_sse_delivers_progress_and_the_terminal_status(service):
    with service.client() as c:
        job = submit(c, small_spec(epochs=2))
        kinds, statuses = [], []
        with c.stream("GET", f"/jobs/{job['id']}/events", timeout=60) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in r.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                    kinds.append(kind)
                elif line.startswith("data:") and kind == "status":
                    statuses.append(json.loads(line[5:])["status"])
        assert "progress" in kinds and "epoch" in kinds, kinds
        assert statuses[0] == "queued" and statuses[-1] == "succeeded", statuses


@pytest.mark.slow
def test_sigterm_preempts_checkpoints_and_another_worker_resumes(service):
    """Warm shutdown of the worker holding a job: it checkpoints, re-queues, and resumes."""
    spare = service.add_worker("w2")
    try:
        with service.client() as c:
            job = submit(c, long_spec())
            wait_running_with_progress(c, job["id"])
            holder = _holder(service, job["id"])
            holder.signal(signal.SIGTERM)  # the whole process group, as `docker stop` + tini
            holder.proc.wait(30)
            again = wait_for(
                lambda: (j := c.get(f"/jobs/{job['id']}").json())["attempts"] >= 2 and j,
                60,
                what="the second attempt",
            )
            assert again["attempts"] == 2 and again["status"] == "running", again
            hist = status_history(service.redis.url, job["id"])
            assert hist[:4] == ["queued", "running", "queued", "running"], hist
            c.post(f"/jobs/{job['id']}/cancel")
            wait_status(c, job["id"], ("cancelled",), timeout=10)
            ckpts = list((service.artifact_dir / "jobs" / job["id"] / "checkpoints").glob("*.pt"))
            assert ckpts, "the preempted attempt wrote a checkpoint"
    finally:
        # keep a live w1 for the rest of the session whichever worker was stopped
        if service.workers[0].proc.poll() is not None:
            service.workers[0] = service.add_worker("w1")
            service.workers.pop()
        if spare.proc.poll() is None:
            spare.stop()


def _holder(service, job_id: str):
    import redis

    r = redis.Redis.from_url(service.redis.url, decode_responses=True)
    name = r.hget(f"tl:job:{job_id}", "worker") or ""
    for w in service.workers:
        if name.startswith(w.args[w.args.index("-n") + 1].split("@")[0] + "@"):
            return w
    raise AssertionError(f"no worker named {name}")
