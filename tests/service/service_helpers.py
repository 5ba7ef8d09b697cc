"""Small specs and polling helpers shared by the service tests."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx


def small_spec(**training: Any) -> dict[str, Any]:
    """Digits, a tiny MLP, warm-up + cosine: a couple of seconds on one CPU core."""
    return {
        "name": "service test",
        "data": {"dataset": "digits", "val_fraction": 0.2},
        "model": {"arch": "mlp", "hidden": [32]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"warmup": {"epochs": 1, "start_lr": 0.0}, "decay": {"kind": "cosine"}},
        "regularization": {"label_smoothing": 0.1, "mixup": {"alpha": 0.2}},
        "training": {"epochs": 3, "batch_size": 64, "seed": 0, "log_every": 5, **training},
    }


def long_spec() -> dict[str, Any]:
    """Runs for minutes unless cancelled; logs every step so it answers within milliseconds."""
    spec = small_spec(epochs=1000, batch_size=16, log_every=1)
    spec["name"] = "long"
    return spec


def submit(c: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/jobs", json=spec)
    assert r.status_code == 201, r.text
    return r.json()


def wait_status(c: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = c.get(f"/jobs/{job_id}").json()
        if j["status"] in statuses:
            return j
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not reach {statuses}: {j}")


def wait_running_with_progress(c: httpx.Client, job_id: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = c.get(f"/jobs/{job_id}").json()
        if j["status"] == "running" and (j.get("progress") or {}).get("step", 0) > 0:
            return j
        assert j["status"] in ("queued", "running"), j
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not start")


def status_history(redis_url: str, job_id: str, prefix: str = "tl") -> list[str]:
    """Every status the job's event stream recorded, in order."""
    import redis

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    out = []
    for _id, fields in r.xrange(f"{prefix}:job:{job_id}:ev"):
        if fields["type"] == "status":
            out.append(json.loads(fields["data"])["status"])
    return out


def wait_for(pred, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
