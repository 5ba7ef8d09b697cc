"""A job end to end through real HTTP, Redis and a Celery worker process."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors
from support import small_spec, statuses, submit, wait_done

pytestmark = pytest.mark.service


@pytest.mark.slow
def test_job_succeeds_with_curves_lr_and_model(service):
    with service.client() as c:
        job = submit(c, small_spec())
        assert job["status"] == "queued"
        done = wait_done(c, job["id"])
        assert done["status"] == "succeeded", done
        assert statuses(service.redis.client(), job["id"]) == ["queued", "running", "succeeded"]
        assert done["attempts"] == 1 and done["error"] is None
        assert done["started_at"] and done["finished_at"]

        p = done["progress"]
        for key in ("epoch", "epochs", "step", "total_steps", "fraction", "eta_seconds"):
            assert key in p, p
        assert p["step"] == p["total_steps"] and p["fraction"] == pytest.approx(1.0)
        assert p["epochs"] == 3
        for key in ("lr", "train_loss", "val_loss", "val_acc"):
            assert math.isfinite(done["metrics"][key]), done["metrics"]
        assert done["best"]["val_acc"] > 0.5 and 0 <= done["best"]["epoch"] < 3

        curves = c.get(
            f"/jobs/{job['id']}/curves", params={"metrics": "train_loss,val_acc,lr"}
        ).json()["series"]
        steps_per_epoch = p["total_steps"] // 3
        assert len(curves["train_loss"]["step"]) >= 3
        assert curves["val_acc"]["step"] == [(e + 1) * steps_per_epoch - 1 for e in range(3)], (
            "per-epoch metrics sit at the epoch's last update"
        )
        assert curves["lr"]["step"] == sorted(set(curves["lr"]["step"]))

        lr = c.get(f"/jobs/{job['id']}/lr").json()
        planned = dict(zip(lr["planned"]["step"], lr["planned"]["lr"], strict=True))
        assert len(planned) == p["total_steps"]
        assert lr["actual"]["step"], lr
        for step, value in zip(lr["actual"]["step"], lr["actual"]["lr"], strict=True):
            assert value == pytest.approx(planned[step], rel=1e-9, abs=1e-15), step

        r = c.get(f"/jobs/{job['id']}/model")
        assert r.status_code == 200
        tensors = load_safetensors(r.content)
        assert tensors and all(np.isfinite(t).all() for t in tensors.values())


@pytest.mark.slow
def test_diverging_job_fails_with_a_readable_error(service):
    spec = small_spec(epochs=2)
    spec["model"] = {"arch": "mlp", "hidden": [256, 256, 256]}
    spec["optimizer"] = {"name": "sgd", "lr": 100.0, "momentum": 0.99}
    spec["schedule"] = {"decay": {"kind": "constant"}}
    spec["regularization"] = {}
    with service.client() as c:
        job = submit(c, spec)
        done = wait_done(c, job["id"])
        assert done["status"] == "failed", done
        assert done["error"]["type"] == "diverged"
        assert done["error"]["message"].startswith("diverged at step"), done["error"]
        assert "Traceback" not in done["error"]["message"]
        assert c.get(f"/jobs/{job['id']}/model").status_code == 409


@pytest.mark.slow
def test_uploaded_signals_train_with_a_cnn(service):
    rng = np.random.default_rng(0)
    n, length = 300, 32
    y = rng.integers(0, 2, n)
    t = np.linspace(0, 4 * np.pi, length)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    x = np.where(y[:, None] == 0, np.sin(t + phase), np.sign(np.sin(t + phase)))
    x = (x + 0.1 * rng.standard_normal((n, length)))[:, None, :].astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y.astype(np.int64))
    with service.client() as c:
        r = c.post("/datasets", files={"file": ("waves.npz", buf.getvalue())})
        assert r.status_code == 201, r.text
        ds = r.json()
        spec = small_spec(epochs=2)
        spec["data"] = {"dataset": ds["id"]}
        spec["model"] = {"arch": "cnn", "channels": [8], "hidden": 16}
        spec["regularization"] = {}
        job = submit(c, spec)
        done = wait_done(c, job["id"])
        assert done["status"] == "succeeded", done
        assert done["best"]["val_acc"] is not None
