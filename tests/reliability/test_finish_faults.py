"""Faults at the end of a job: a Redis outage while it finishes, a full disk at the final
model write, a dataset deleted under a queued job. Each ends the job once, with its
reason, and nothing of attempt 1 is lost."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from support import LEASE_TTL_S, get_job, reliability_spec, submit, wait_done, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.service]


def _steps(ckpts: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in ckpts.glob("ckpt-*.pt"))


def test_redis_outage_while_the_job_finishes_is_retried_and_keeps_the_log(rel):
    """Redis is killed during the last epochs and stays down until the worker is in its
    finish writes; it comes back, and the same attempt records the result."""
    rel.add_worker()
    with rel.client() as c:
        job = submit(c, reliability_spec(epochs=3))
        jid, spe = job["id"], job["plan"]["steps_per_epoch"]
        ckpts = rel.artifact_dir / "jobs" / jid / "checkpoints"
        wait_for(lambda: _steps(ckpts), 120, 0.02, what="the epoch-1 checkpoint")
        rel.redis.kill()
        try:
            # Measured in training, not seconds: the last epoch's checkpoint is written
            # right before the result, so the finish writes meet a Redis that is away.
            assert _steps(ckpts)[-1] < 3 * spe, "the job ended before Redis was killed"
            wait_for(lambda: _steps(ckpts)[-1] == 3 * spe, 120, 0.05, what="training to end")
            # the finish writes meet the outage; it outlasts the lease, so only a retry
            # by the same attempt (not the reaper's re-run) can end the job at attempt 1
            time.sleep(LEASE_TTL_S + 1)
        finally:
            rel.redis.start()
        done = wait_done(c, jid, 90)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 1, "the finish was not retried: the job was re-run"
        assert done["result"]["model"] == "model.safetensors"
        assert (rel.artifact_dir / "jobs" / jid / "model.safetensors").exists()
        lines = c.get(f"/jobs/{jid}/logs", params={"limit": 5000}).json()["lines"]
        mine = [ln["msg"] for ln in lines if ln["attempt"] == 1]
        # the epoch lines logged while Redis was down survived in the worker's memory
        for epoch in (1, 2, 3):
            assert any(m.startswith(f"epoch {epoch}/3 ") for m in mine), mine
        assert any("ending as succeeded" in m for m in mine), mine
        assert "Redis unreachable" in rel.workers[0].log.read_text(errors="replace")


def _mount_tmpfs(path: Path, size: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return res.returncode == 0


def test_full_disk_at_the_model_write_fails_once_with_disk_full(rel):
    """The job's directory is a real filesystem with room for its checkpoint but not
    for the model after it (sizes measured on a first run of the same spec)."""
    spec = reliability_spec(epochs=2, checkpoint_every=2)  # one checkpoint, at the end
    w = rel.add_worker()
    with rel.client() as c:
        first = submit(c, spec)["id"]
        assert wait_done(c, first, 120)["status"] == "succeeded"
        d = rel.artifact_dir / "jobs" / first
        ckpt_size = max(p.stat().st_size for p in (d / "checkpoints").glob("ckpt-*.pt"))
        model_size = (d / "model.safetensors").stat().st_size
        w.stop(10)  # the next job waits in the queue while its directory is mounted
        rel.workers.remove(w)

        jid = submit(c, spec)["id"]
        job_dir = rel.artifact_dir / "jobs" / jid
        if not _mount_tmpfs(job_dir, ckpt_size + model_size // 2):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        try:
            rel.add_worker()
            done = wait_done(c, jid, 120)
            leftovers = [p.name for p in job_dir.rglob("*.tmp")]
        finally:
            subprocess.run(["umount", "-l", str(job_dir)], check=False)
        assert done["status"] == "failed", done
        assert done["attempts"] == 1, done  # no crash loop
        err = done["error"]
        assert err["type"] == "disk_full", err
        msg = err["message"]
        assert msg.startswith("no space left writing model.safetensors ("), msg
        assert "to the job's directory:" in msg and msg.endswith(" free"), msg
        assert "/" not in msg.replace("job's directory", ""), msg  # no server path
        assert str(rel.artifact_dir) not in msg
        assert leftovers == []


def _npz() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.normal(size=(80, 4)).astype(np.float32), y=np.arange(80) % 2)
    return buf.getvalue()


def test_a_deleted_dataset_fails_the_job_without_a_server_path(rel):
    with rel.client() as c:
        up = c.post("/datasets", files={"file": ("d.npz", _npz(), "application/octet-stream")})
        assert up.status_code == 201, up.text
        ds = up.json()["id"]
        body = {
            "data": {"dataset": ds},
            "model": {"arch": "mlp", "hidden": [8]},
            "training": {"epochs": 1, "batch_size": 16},
        }
        jid = submit(c, body)["id"]  # no worker yet: it waits in the queue
        shutil.rmtree(rel.artifact_dir / "datasets" / ds)  # {id}/x.npy, y.npy
        rel.add_worker()
        done = wait_done(c, jid, 120)
        assert done["status"] == "failed", done
        err = done["error"]
        assert err["type"] == "dataset_missing", err
        assert ds in err["message"] and "/" not in err["message"], err
        assert str(rel.artifact_dir) not in str(done)


def test_pending_reason_with_no_live_worker(rel):
    """No worker at all: a queued job says so, and stops saying it once one is alive."""
    with rel.client() as c:
        jid = submit(c, reliability_spec(epochs=2))["id"]
        wait_for(
            lambda: (get_job(c, jid).get("pending_reason") or "").startswith("no live worker"),
            30,
            0.2,
            what="a pending_reason",
        )
        assert "cpu queue" in get_job(c, jid)["pending_reason"]
        w = rel.add_worker()
        rel.wait_ready(w)
        wait_for(
            lambda: (
                get_job(c, jid)["status"] != "queued" or get_job(c, jid)["pending_reason"] is None
            ),
            30,
            0.2,
            what="the reason to clear",
        )
        assert wait_done(c, jid, 120)["pending_reason"] is None


def test_full_disk_at_a_checkpoint_fails_once_with_disk_full(rel):
    with rel.client() as c:
        jid = submit(c, reliability_spec(epochs=2))["id"]  # no worker yet: it waits
        job_dir = rel.artifact_dir / "jobs" / jid
        if not _mount_tmpfs(job_dir, 64 * 1024):  # far less than one checkpoint
            pytest.skip("cannot mount a tmpfs here (needs root)")
        try:
            rel.add_worker()
            done = wait_done(c, jid, 120)
            leftovers = [p.name for p in job_dir.rglob("*.tmp")]
        finally:
            subprocess.run(["umount", "-l", str(job_dir)], check=False)
        assert done["status"] == "failed" and done["attempts"] == 1, done
        assert done["error"]["type"] == "disk_full", done["error"]
        msg = done["error"]["message"]
        assert re.match(
            r"no space left writing ckpt-\d{9}\.pt \(\d+\.\d kB\) to the job's directory: ", msg
        ), msg
        assert str(rel.artifact_dir) not in msg
        assert leftovers == []
