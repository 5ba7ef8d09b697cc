"""A job's checkpoints are its tenant's: another tenant's key gets the usual 404."""

from __future__ import annotations

import torch
from support import assert_error, minimal_spec

from tricks import checkpoint as ckpt


def test_another_tenants_checkpoints_are_a_404(secure_api):
    a = secure_api.make_key("ckpt-a", "--tenant", "ckpt-tenant-a")["key"]
    b = secure_api.make_key("ckpt-b", "--tenant", "ckpt-tenant-b")["key"]
    with secure_api.client(a) as ca, secure_api.client(b) as cb:
        job = ca.post("/jobs", json=minimal_spec())
        assert job.status_code == 201, job.text
        job_id, spe = job.json()["id"], job.json()["plan"]["steps_per_epoch"]
        directory = secure_api.artifact_dir / "jobs" / job_id / "checkpoints"
        path = ckpt.save_checkpoint({"model": {"w": torch.ones(2)}}, directory, spe)
        ckpt.pin_epoch(path, 1)

        assert [d["epoch"] for d in ca.get(f"/jobs/{job_id}/checkpoints").json()["data"]] == [1]
        assert ca.get(f"/jobs/{job_id}/checkpoints/1").content == path.read_bytes()
        for url in (f"/jobs/{job_id}/checkpoints", f"/jobs/{job_id}/checkpoints/1"):
            err = assert_error(cb.get(url), 404, "not_found")
            assert job_id in err["message"] and "epoch" not in err["message"]
        assert_error(secure_api.client().get(f"/jobs/{job_id}/checkpoints"), 401)
