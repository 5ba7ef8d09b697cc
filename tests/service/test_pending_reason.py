"""A queued job that no live worker can run says why (`pending_reason`), in the job's
record and in the list; one that a live worker serves says nothing."""

from __future__ import annotations

import pytest
from support import get_job, plain_spec, submit, wait_done, wait_for

pytestmark = pytest.mark.service


def test_cuda_job_with_no_gpu_worker_says_why_it_waits(service, cleanup):
    """The session's only worker consumes the cpu queue: a cuda job stays queued."""
    with service.client() as c:
        job = cleanup.job(submit(c, plain_spec(device="cuda")))
        assert job["queue"] == "gpu" and job["status"] == "queued"
        want = "no live worker serves the gpu queue (live workers serve: cpu)"
        wait_for(lambda: get_job(c, job["id"])["pending_reason"] == want, 30, 0.2, what=want)
        listed = c.get("/jobs", params={"status": "queued", "limit": 200}).json()["data"]
        row = next(j for j in listed if j["id"] == job["id"])
        assert row["pending_reason"] == want
        assert c.post(f"/jobs/{job['id']}/cancel").status_code == 202
        assert wait_done(c, job["id"])["pending_reason"] is None  # only queued jobs wait


def test_cpu_job_has_no_pending_reason(service, cleanup):
    with service.client() as c:
        job = cleanup.job(submit(c, plain_spec()))
        assert job["pending_reason"] is None
        done = wait_done(c, job["id"])
        assert done["status"] == "succeeded" and done["pending_reason"] is None
