"""Cancel, SSE and preemption: the control paths between API, Redis and worker."""

from __future__ import annotations

import json
import signal
import time

import pytest
from support import (
    get_job,
    long_spec,
    small_spec,
    statuses,
    submit,
    wait_done,
    wait_job,
    wait_running,
    wait_status,
)

pytestmark = pytest.mark.service


@pytest.mark.slow
def test_cancel_running_job_stops_fast_and_stays_cancelled(service, cleanup):
    with service.client() as c:
        job = cleanup.job(submit(c, long_spec()))
        wait_running(c, job["id"])
        t0 = time.monotonic()
        r = c.post(f"/jobs/{job['id']}/cancel")
        assert r.status_code == 202, r.text
        done = wait_done(c, job["id"], timeout=10)
        elapsed = time.monotonic() - t0
        assert done["status"] == "cancelled", done
        assert elapsed < 2.0, f"cancel took {elapsed:.2f}s"
        time.sleep(0.5)  # the window in which a late write of the stopped attempt would land
        assert get_job(c, job["id"])["status"] == "cancelled"
        assert statuses(service.redis.client(), job["id"]) == ["queued", "running", "cancelled"]
        assert c.post(f"/jobs/{job['id']}/cancel").status_code == 409


@pytest.mark.slow
def test_cancelled_queued_job_never_starts(service, cleanup):
    with service.client() as c:
        blocker = cleanup.job(submit(c, long_spec()))
        wait_running(c, blocker["id"])
        queued = cleanup.job(submit(c, small_spec()))
        assert get_job(c, queued["id"])["status"] == "queued"
        assert c.post(f"/jobs/{queued['id']}/cancel").status_code == 202
        assert get_job(c, queued["id"])["status"] == "cancelled"
        c.post(f"/jobs/{blocker['id']}/cancel")
        wait_status(c, blocker["id"], "cancelled", timeout=10)
        # The worker now receives the cancelled job's message; it must drop it.
        probe = submit(c, small_spec(epochs=2))
        wait_status(c, probe["id"], "succeeded")
        j = get_job(c, queued["id"])
        assert j["status"] == "cancelled" and j["started_at"] is None and j["attempts"] == 0
        assert statuses(service.redis.client(), queued["id"]) == ["queued", "cancelled"]


@pytest.mark.slow
def test_sse_delivers_progress_and_the_terminal_status(service):
    with service.client() as c:
        job = submit(c, small_spec(epochs=2))
        kinds, seen = [], []
        with c.stream("GET", f"/jobs/{job['id']}/events", timeout=60) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in r.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                    kinds.append(kind)
                elif line.startswith("data:") and kind == "status":
                    seen.append(json.loads(line[5:])["status"])
        assert "progress" in kinds and "epoch" in kinds, kinds
        assert seen[0] == "queued" and seen[-1] == "succeeded", seen


@pytest.mark.slow
def test_sigterm_preempts_checkpoints_and_another_worker_resumes(service, cleanup):
    """Warm shutdown of the worker holding a job: it checkpoints, re-queues, and resumes."""
    spare = service.add_worker("w2")
    try:
        with service.client() as c:
            job = cleanup.job(submit(c, long_spec()))
            wait_running(c, job["id"])
            holder = _holder(service, job["id"])
            holder.signal(signal.SIGTERM)  # the whole process group, as `docker stop` + tini
            holder.proc.wait(30)
            again = wait_job(c, job["id"], lambda j: j["attempts"] >= 2, 60, "the second attempt")
            assert again["attempts"] == 2 and again["status"] == "running", again
            hist = statuses(service.redis.client(), job["id"])
            assert hist[:4] == ["queued", "running", "queued", "running"], hist
            c.post(f"/jobs/{job['id']}/cancel")
            wait_status(c, job["id"], "cancelled", timeout=10)
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
    r = service.redis.client()
    name = r.hget(f"tl:job:{job_id}", "worker") or ""
    for w in service.workers:
        if name.startswith(w.args[w.args.index("-n") + 1].split("@")[0] + "@"):
            return w
    raise AssertionError(f"no worker named {name}")
