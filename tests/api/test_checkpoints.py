"""GET /jobs/{id}/checkpoints and /checkpoints/{epoch} over real HTTP, for a failed job, and
GET /jobs/{id}/model of an LR range test. No worker: the test drives the job through the
store the way a worker would, and writes its checkpoints with tricks.checkpoint."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime

import torch
from support import ROOT, assert_error

from tricks import checkpoint as ckpt


def plant(api, job_id: str, step: int, epoch: int, pin: bool) -> bytes:
    """A checkpoint as training writes it (torch.save of tensors and primitives)."""
    directory = api.artifact_dir / "jobs" / job_id / "checkpoints"
    state = {"model": {"w": torch.full((2, 3), float(epoch))}, "epoch": epoch, "step": step}
    path = ckpt.save_checkpoint(state, directory, step, keep=10)
    if pin:
        ckpt.pin_epoch(path, epoch)
    return path.read_bytes()


def test_a_failed_jobs_checkpoints_list_and_download(api, client):
    job = api.create_job(client)
    job_id, spe = job["id"], job["plan"]["steps_per_epoch"]
    attempt = api.run_job(job_id)
    first = plant(api, job_id, spe, 1, pin=True)
    second = plant(api, job_id, 2 * spe, 2, pin=False)  # an epoch-end rolling checkpoint
    plant(api, job_id, 2 * spe + 3, 2, pin=False)  # mid-epoch (a resume point): not listed
    error = {"type": "time_limit", "message": "time limit"}
    assert api.store.finish(job_id, attempt, "failed", error=error)

    r = client.get(f"/jobs/{job_id}/checkpoints")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(d["epoch"], d["step"]) for d in body["data"]] == [(1, spe), (2, 2 * spe)]
    assert body["count"] == 2 and "weights_only=True" in body["format"]
    assert [d["bytes"] for d in body["data"]] == [len(first), len(second)]
    for d in body["data"]:
        assert datetime.fromisoformat(d["created"].replace("Z", "+00:00")).tzinfo is not None
        assert d["url"] == f"/jobs/{job_id}/checkpoints/{d['epoch']}"

    for epoch, want in ((1, first), (2, second)):
        r = client.get(f"/jobs/{job_id}/checkpoints/{epoch}")
        assert r.status_code == 200 and r.content == want
        assert r.headers["content-type"] == "application/octet-stream"
        assert f"{job_id}-epoch-{epoch:05d}.pt" in r.headers["content-disposition"]
        state = torch.load(io.BytesIO(r.content), weights_only=True)  # no pickled code
        assert state["epoch"] == epoch and torch.equal(
            state["model"]["w"], torch.full((2, 3), epoch)
        )

    for missing in (3, 0):
        err = assert_error(client.get(f"/jobs/{job_id}/checkpoints/{missing}"), 404, "not_found")
        assert f"epoch {missing}" in err["message"] and err["details"]["epochs"] == [1, 2]
    assert_error(client.get("/jobs/j00000000000000000000/checkpoints"), 404, "not_found")
    assert_error(client.get("/jobs/j00000000000000000000/checkpoints/1"), 404, "not_found")


def test_a_queued_job_lists_no_checkpoints(api, client):
    job = api.create_job(client)
    r = client.get(f"/jobs/{job['id']}/checkpoints")
    assert r.status_code == 200 and r.json()["data"] == [] and r.json()["count"] == 0


def range_test_job(api, client) -> str:
    job = api.create_job(client, task="lr_range_test", lr_range={"steps": 10})
    attempt = api.run_job(job["id"])
    assert api.store.finish(job["id"], attempt, "succeeded", result={"suggested_lr": 0.1})
    return job["id"]


def test_the_model_of_a_range_test_is_a_409_that_says_so(api, client):
    job_id = range_test_job(api, client)
    err = assert_error(client.get(f"/jobs/{job_id}/model"), 409, "no_model")
    assert "range test" in err["message"] and "no model" in err["message"]
    assert "missing" not in err["message"]


def test_cli_model_of_a_range_test_exits_1_saying_it_has_no_model(api, client, tmp_path):
    job_id = range_test_job(api, client)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRICKLAB_URL": api.url}
    env.pop("TRICKLAB_API_KEY", None)
    res = subprocess.run(
        [sys.executable, "-m", "tricklab.client.cli", "model", job_id, "-o", str(tmp_path / "m")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "range test" in res.stderr and "no model" in res.stderr, res.stderr
    assert "missing" not in res.stderr and not (tmp_path / "m").exists()
