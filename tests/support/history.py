"""What a job recorded, read back: its event stream in Redis and its curves over HTTP,
with the checks that an interrupted run left no gap, duplicate or overlap in them."""

from __future__ import annotations

import json
import math

import httpx
import redis


def events(r: redis.Redis, job_id: str) -> list[tuple[str, dict]]:
    """(type, data) of every event of the job, in order (`r` decodes responses)."""
    return [(f["type"], json.loads(f["data"])) for _id, f in r.xrange(f"tl:job:{job_id}:ev")]


def statuses(r: redis.Redis, job_id: str) -> list[str]:
    """Every status the job's event stream recorded, in order."""
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


def curves(c: httpx.Client, job_id: str, names: str = "train_loss,lr,val_acc") -> dict:
    return c.get(f"/jobs/{job_id}/curves", params={"metrics": names}).json()["series"]


def expected_log_steps(total: int, per_epoch: int, log_every: int) -> list[int]:
    """Steps (0-based) the loop logs at: every log_every updates and at each epoch end."""
    return [s - 1 for s in range(1, total + 1) if s % log_every == 0 or s % per_epoch == 0]


def assert_curves_continuous(c: httpx.Client, done: dict, log_every: int = 10) -> None:
    """A finished job's curves hold every log point and epoch end once, in order."""
    p = done["progress"]
    total, epochs = p["total_steps"], p["epochs"]
    per_epoch = total // epochs
    s = curves(c, done["id"])
    want = expected_log_steps(total, per_epoch, log_every)
    for name in ("train_loss", "lr"):
        assert s[name]["step"] == want, f"{name}: gaps or duplicates"
        assert all(v is not None and math.isfinite(v) for v in s[name]["value"])
    assert s["val_acc"]["step"] == [(e + 1) * per_epoch - 1 for e in range(epochs)]
