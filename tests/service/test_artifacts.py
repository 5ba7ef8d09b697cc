"""What a job leaves behind, through real HTTP, Redis and a Celery worker process: the
model file that `tricks.load_model` rebuilds, the checkpoints of a cancelled job (API,
client and CLI), and the CLI on an LR range test, which has no model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from support import (
    ROOT,
    assert_error,
    long_spec,
    small_spec,
    stop_job,
    submit,
    wait_done,
    wait_epoch,
)

import tricks
from tricklab.client.http import Client
from tricks.data import load_dataset
from tricks.models import build_model
from tricks.spec import JobSpec

pytestmark = [pytest.mark.service, pytest.mark.slow]


def cli(service, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRICKLAB_URL": service.api_url}
    env.pop("TRICKLAB_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "tricklab.client.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_the_model_file_rebuilds_the_trained_module(service, tmp_path):
    spec = {**small_spec(epochs=2), "model": {"arch": "cnn", "channels": [8], "hidden": 16}}
    with service.client() as c:
        done = wait_done(c, submit(c, spec)["id"], timeout=180)
        assert done["status"] == "succeeded", done
        r = c.get(f"/jobs/{done['id']}/model")
    assert r.status_code == 200
    path = tmp_path / "model.safetensors"
    path.write_bytes(r.content)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["spec"]) == done["spec"]
    job_spec = JobSpec.model_validate(done["spec"])
    data = load_dataset(job_spec.data, job_spec.training.seed)
    assert json.loads(meta["input_shape"]) == list(data.input_shape) == [1, 8, 8]
    assert meta["num_classes"] == str(data.num_classes) and meta["tricklab_version"]

    model = tricks.load_model(path)
    assert not model.training
    with torch.no_grad():
        acc = (model(data.x_val).argmax(1) == data.y_val).float().mean().item()
    # the oracle: the worker's own evaluation of the final weights
    assert acc == pytest.approx(done["metrics"]["val_acc"], abs=1.5 / len(data.y_val))
    assert acc > 0.5


def test_a_cancelled_jobs_checkpoints_download_and_load(service, cleanup, tmp_path):
    with service.client() as c:
        job = cleanup.job(submit(c, long_spec()))
        wait_epoch(c, job["id"], 2, timeout=180)
        done = stop_job(c, job["id"])
        assert done["status"] == "cancelled", done
        listed = c.get(f"/jobs/{job['id']}/checkpoints").json()["data"]
        spe = done["plan"]["steps_per_epoch"]
        assert [d["epoch"] for d in listed][:2] == [1, 2], listed
        assert all(d["step"] == d["epoch"] * spe and d["bytes"] > 0 for d in listed)
        assert_error(c.get(f"/jobs/{job['id']}/checkpoints/10000"), 404, "not_found")

    with Client(url=service.api_url) as client:
        assert client.checkpoints(job["id"])["data"] == listed
        path = client.checkpoint(job["id"], 1, tmp_path / "e1.pt")
    assert path.stat().st_size == listed[0]["bytes"]
    state = torch.load(path, weights_only=True)  # tensors and primitives only
    assert state["epoch"] == 1 and state["step"] == spe
    spec = JobSpec.model_validate(done["spec"])
    model = build_model(spec.model, (1, 8, 8), 10, spec.regularization.dropout)
    model.load_state_dict(state["model"])  # the module's own weights, every key

    res = cli(service, "checkpoints", job["id"])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["EPOCH", "STEP", "SIZE", "CREATED"]
    assert lines[1].split()[:2] == ["1", str(spe)]
    out = tmp_path / "cli.pt"
    res = cli(service, "checkpoints", job["id"], "--epoch", "2", "-o", str(out))
    assert res.returncode == 0 and "weights_only=True" in res.stdout, res.stderr
    assert torch.load(out, weights_only=True)["epoch"] == 2
    res = cli(service, "checkpoints", job["id"], "--epoch", "10000", "-o", str(out))
    assert res.returncode == 1 and "no checkpoint after epoch 10000" in res.stderr


def test_cli_model_of_a_range_test_says_it_has_none(service, tmp_path):
    spec = {**small_spec(), "task": "lr_range_test", "lr_range": {"steps": 10}}
    with service.client() as c:
        done = wait_done(c, submit(c, spec)["id"], timeout=180)
    assert done["status"] == "succeeded", done
    res = cli(service, "model", done["id"], "-o", str(tmp_path / "m.safetensors"))
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "range test" in res.stderr and "no model" in res.stderr, res.stderr
    assert "missing" not in res.stderr
