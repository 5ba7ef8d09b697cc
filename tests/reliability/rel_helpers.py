"""Specs, expected log steps and record checks for the reliability tests."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import httpx
import redis

# Short leases so that recovery takes seconds (the reliability cluster's env uses them).
LEASE_TTL_S = 3.0
MAX_RESTARTS = 2


def spec(epochs: int = 30, **training: Any) -> dict[str, Any]:
    """Digits, a small MLP: ~0.2 s per epoch of 90 steps on one core; no dropout/mixup RNG
    beyond the seeded generator, so a resumed run equals an uninterrupted one exactly."""
    return {
        "name": "reliability",
        "data": {"dataset": "digits", "val_fraction": 0.2},
        "model": {"arch": "mlp", "hidden": [256, 256]},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"warmup": {"epochs": 1, "start_lr": 0.0}, "decay": {"kind": "cosine"}},
        "regularization": {"label_smoothing": 0.1, "mixup": {"alpha": 0.2}},
        "training": {"epochs": epochs, "batch_size": 16, "seed": 0, "log_every": 10, **training},
    }


def submit(c: httpx.Client, body: dict[str, Any]) -> str:
    r = c.post("/jobs", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def job(c: httpx.Client, job_id: str) -> dict[str, Any]:
    r = c.get(f"/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait(c: httpx.Client, job_id: str, pred, timeout: float = 90, what: str = "") -> dict:
    deadline = time.monotonic() + timeout
    j: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            j = job(c, job_id)
        except (httpx.HTTPError, AssertionError):
            time.sleep(0.2)
            continue
        if pred(j):
            return j
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id}: {what or 'condition'} not reached: {j}")


def terminal(c: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    return wait(c, job_id, lambda j: j["status"] in ("succeeded", "failed", "cancelled"), timeout)


def at_epoch(c: httpx.Client, job_id: str, epoch: int, timeout: float = 60) -> dict:
    return wait(
        c,
        job_id,
        lambda j: j["status"] == "running" and (j.get("progress") or {}).get("epoch", 0) >= epoch,
        timeout,
        f"running at epoch {epoch}",
    )


def expected_log_steps(total: int, per_epoch: int, log_every: int) -> list[int]:
    """Steps (0-based) the loop logs at: every log_every updates and at each epoch end."""
    return [s - 1 for s in range(1, total + 1) if s % log_every == 0 or s % per_epoch == 0]


def curves(c: httpx.Client, job_id: str, names: str = "train_loss,lr,val_acc") -> dict:
    return c.get(f"/jobs/{job_id}/curves", params={"metrics": names}).json()["series"]


def assert_curves_continuous(c: httpx.Client, done: dict, log_every: int = 10) -> None:
    p = done["progress"]
    total, epochs = p["total_steps"], p["epochs"]
    per_epoch = total // epochs
    s = curves(c, done["id"])
    want = expected_log_steps(total, per_epoch, log_every)
    for name in ("train_loss", "lr"):
        assert s[name]["step"] == want, f"{name}: gaps or duplicates"
        assert all(v is not None and math.isfinite(v) for v in s[name]["value"])
    assert s["val_acc"]["step"] == [(e + 1) * per_epoch - 1 for e in range(epochs)]


def events(r: redis.Redis, job_id: str) -> list[tuple[str, dict]]:
    return [(f["type"], json.loads(f["data"])) for _id, f in r.xrange(f"tl:job:{job_id}:ev")]


def statuses(r: redis.Redis, job_id: str) -> list[str]:
    return [d["status"] for t, d in events(r, job_id) if t == "status"]


def assert_attempts_never_overlap(r: redis.Redis, job_id: str) -> None:
    """Status events alternate running/queued: an attempt starts only after the previous
    one was re-queued, and each running event carries the next attempt number."""
    seen = [(d["status"], d.get("attempts")) for t, d in events(r, job_id) if t == "status"]
    running = [a for st, a in seen if st == "running"]
    assert running == list(range(1, len(running) + 1)), seen
    for (st, _), (nxt, _) in zip(seen, seen[1:], strict=False):
        if st == "running":
            assert nxt != "running", f"two attempts running at once: {seen}"
