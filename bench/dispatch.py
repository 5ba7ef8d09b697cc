"""Dispatch latency: POST /jobs → status running, against a bare Celery no-op round trip.

Both on the same private Redis and the same idle worker (one prefork child). The
no-op is send_task("tricklab.noop") + result.get(); "POST → running" is the time
from sending the POST until the job's `running` status event lands in Redis
(claim done, i.e. the worker has the job and is loading data). It also prints the
time from the record being written to the claim, from the server's own clocks (the
job's created_at and started_at): on a 2-core machine the claimed job starts loading
data and training at once and competes with the API and this client for the CPU, which
the no-op does not, so the end-to-end figure carries that contention.

    python bench/dispatch.py [--n 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Stack, percentile  # noqa: E402

SPEC = {
    "name": "dispatch bench",
    "data": {"dataset": "digits"},
    "model": {"arch": "mlp", "hidden": [16]},
    "training": {"epochs": 2, "batch_size": 64},
}


def wait_status(r: redis.Redis, job_id: str, want: set[str], last: str = "0-0") -> str:
    key = f"tl:job:{job_id}:ev"
    while True:
        for _s, entries in r.xread({key: last}, block=5000) or []:
            for eid, f in entries:
                last = eid
                if f["type"] == "status" and json.loads(f["data"])["status"] in want:
                    return last


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=30)
    args = p.parse_args()
    with Stack() as st:
        import os

        os.environ["REDIS_URL"] = st.redis_url
        from worker.celery_app import app

        app.conf.broker_url = app.conf.result_backend = st.redis_url
        r = redis.Redis.from_url(st.redis_url, decode_responses=True)
        c = httpx.Client(base_url=st.api_url, timeout=30)

        for _ in range(3):  # warm up both paths
            app.send_task("tricklab.noop", args=[1], queue="cpu").get(timeout=30)
        noop = []
        for i in range(args.n):
            t0 = time.perf_counter()
            assert app.send_task("tricklab.noop", args=[i], queue="cpu").get(timeout=30) == i
            noop.append(time.perf_counter() - t0)

        dispatch, claim = [], []
        for i in range(args.n + 2):
            t0 = time.perf_counter()
            job = c.post("/jobs", json=SPEC).json()
            wait_status(r, job["id"], {"running", "succeeded", "failed"})
            dt = time.perf_counter() - t0
            c.post(f"/jobs/{job['id']}/cancel")
            wait_status(r, job["id"], {"succeeded", "failed", "cancelled"})
            # idle again: the one-process worker runs this no-op only after it has wrapped
            # up the cancelled job, so the next POST does not queue behind that job
            app.send_task("tricklab.noop", args=[0], queue="cpu").get(timeout=30)
            if i >= 2:  # the first ones pay for lazy imports in the child
                dispatch.append(dt)
                h = r.hgetall(f"tl:job:{job['id']}")
                claim.append(float(h["started_at"]) - float(h["created_at"]))

    def ms(xs: list[float], q: float) -> str:
        return f"{percentile(xs, q) * 1000:7.1f} ms"

    print(f"idle worker, one prefork child, n={args.n}")
    print(f"  celery no-op round trip   p50 {ms(noop, 50)}   p99 {ms(noop, 99)}")
    print(f"  POST /jobs -> running     p50 {ms(dispatch, 50)}   p99 {ms(dispatch, 99)}")
    print(
        f"  overhead (p50)            {(percentile(dispatch, 50) - percentile(noop, 50)) * 1000:7.1f} ms"
    )
    print(
        f"  record written -> claimed p50 {ms(claim, 50)}   p99 {ms(claim, 99)}   (server clocks)"
    )
    print(
        f"  ratios to the no-op p50: POST -> running {percentile(dispatch, 50) / percentile(noop, 50):.1f}x,"
        f" written -> claimed {percentile(claim, 50) / percentile(noop, 50):.1f}x"
    )


if __name__ == "__main__":
    main()
