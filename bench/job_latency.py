"""How long from a job's claim to its first optimizer step, on a fresh and on a warm worker?

    .venv/bin/python bench/job_latency.py [--fresh 3] [--warm 5]     # about a minute

A private stack (bench/harness.py: redis-server, the API, one Celery worker with one
pool process and one torch thread, OMP_NUM_THREADS=1 as the service runs). Jobs are
the digits MLP [256, 128] with log_every 1 and one epoch, so the first log point is
the end of the first optimizer step. For each job, from its record in Redis:
  claim → loop start   started_at (the claim, job_claim.lua) to the job's "start"
                        event (on_start: dataset loaded, model, optimizer and
                        checkpoint state built, just before the first step)
  claim → first step   started_at to progress.first_log_at (worker/reporting.py)
"fresh": the first job a newly started worker runs (the worker is restarted before
each); "warm": the jobs after it on the same worker. Targets: fresh ≤ 300 ms, warm ≤
50 ms (claim → first step). Medians, and the max for the fresh runs. Figures are noisy
on a shared machine: contention only adds time. Prints figures; asserts nothing.
A code base without progress.first_log_at prints only claim → loop start.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Stack  # noqa: E402

WORKER_ARGS = ["-m", "celery", "-A", "worker.celery_app:app", "worker", "-Q", "cpu", "-c", "1",
               "-n", "bench@%h", "--without-gossip", "--without-mingle", "-l", "WARNING"]  # fmt: skip
SPEC: dict[str, Any] = {
    "name": "latency",
    "data": {"dataset": "digits"},
    "model": {"arch": "mlp", "hidden": [256, 128]},
    "training": {"epochs": 1, "device": "cpu", "log_every": 1},
}


class OneThreadStack(Stack):
    """The bench stack with one torch thread in the worker, as the service's tests run it."""

    def __init__(self) -> None:
        super().__init__()
        self.env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.worker_n = 0

    def restart_worker(self) -> None:
        """Stop the worker (warm shutdown) and start a new one: its next job is a fresh one's."""
        worker = self.procs[1]
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        self.worker_n += 1
        self._start([sys.executable, *WORKER_ARGS], f"worker{self.worker_n}.log")
        self.procs[1] = self.procs.pop()


def run_job(c: httpx.Client, spec: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    r = c.post("/jobs", json=spec)
    r.raise_for_status()
    jid = r.json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{jid}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            assert job["status"] == "succeeded", job
            return job
        time.sleep(0.25)  # the job's times come from its record: polling fast only adds load
    raise TimeoutError(f"job {jid} did not finish in {timeout:.0f} s")


def timings(r: redis.Redis, job: dict[str, Any]) -> tuple[float, float | None]:
    """(claim → loop start, claim → first step) in ms, from the record and its events."""
    started = float(r.hget(f"tl:job:{job['id']}", "started_at"))
    start_ms = None
    for entry_id, fields in r.xrange(f"tl:job:{job['id']}:ev"):
        if fields[b"type"] == b"start":
            start_ms = int(entry_id.split(b"-")[0])
    assert start_ms is not None, "no start event"
    first = job["progress"].get("first_log_at")
    return start_ms - started * 1000, (first - started) * 1000 if first is not None else None


def show(label: str, rows: list[tuple[float, float | None]], target: str) -> None:
    setup = [a for a, _ in rows]
    line = f"  {label:6s} claim → loop start  median {statistics.median(setup):7.1f} ms"
    line += f"  max {max(setup):7.1f} ms"
    first = [b for _, b in rows if b is not None]
    if first:
        line += f"   claim → first step  median {statistics.median(first):7.1f} ms"
        line += f"  max {max(first):7.1f} ms   target {target}"
    print(line, f"({len(rows)} jobs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fresh", type=int, default=3, help="fresh-worker jobs (a restart each)")
    ap.add_argument("--warm", type=int, default=5, help="warm-worker jobs after each fresh one")
    args = ap.parse_args()
    fresh: list[tuple[float, float | None]] = []
    warm: list[tuple[float, float | None]] = []
    with OneThreadStack() as stack, httpx.Client(base_url=stack.api_url, timeout=30) as c:
        r = redis.Redis.from_url(stack.redis_url)
        for i in range(args.fresh):
            if i:
                stack.restart_worker()
            fresh.append(timings(r, run_job(c, SPEC)))
            for _ in range(args.warm if i == 0 else 1):
                warm.append(timings(r, run_job(c, SPEC)))
    print("claim → first optimizer step (digits MLP [256, 128], log_every 1, 1 torch thread)")
    show("fresh", fresh, "<= 300 ms")
    show("warm", warm, "<= 50 ms")
    print(json.dumps({"fresh": fresh, "warm": warm}))


if __name__ == "__main__":
    main()
