"""The queue reconciler's round time at 2,000 and 10,000 queued jobs, before and after.

A private redis-server; N queued job records written by the real Store (a small job
spec, one tenant) and N real TRAIN_TASK messages published by Celery to the `cpu`
queue, plus 1% of the jobs with no message (the reconciler notes them). Each round
is one call of worker.reconcile.reconcile (lock released in between) against the
previous algorithm, re-implemented here as it was (every waiting message concatenated
into one string, `job_id in text` per job: quadratic; whole records read; one HSET per
missing job), on the same data. Target: under 0.2 s at 10,000 queued.

    python bench/reconcile.py [--sizes 2000,10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import free_port  # noqa: E402

SPEC = {
    "name": "reconcile bench",
    "data": {"dataset": "digits", "val_fraction": 0.2},
    "model": {"arch": "mlp", "hidden": [32]},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "training": {"epochs": 3, "batch_size": 64, "seed": 0},
}
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def old_reconcile(store: Any, app: Any, *, after_s: float, lock_s: float, owner: str) -> list:
    """worker.reconcile.reconcile before the fix (sweep stepping included, as there)."""
    from tricklab.server import sweep_scheduler
    from tricklab.server.submit import celery_enqueue

    if not store.r.set(store.keys.reconcile_lock, owner, nx=True, px=max(100, int(lock_s * 1000))):
        return []
    enqueue = celery_enqueue(app)
    missing_key = store.keys.reconcile_missing
    now = time.time()
    ids = store.queued_jobs()
    jobs = store.get_jobs(ids) if ids else []
    queues = {j.get("queue") or "cpu" for j in jobs}
    with store.r.pipeline(transaction=False) as pipe:
        for q in sorted(queues):
            for suffix in _PRIORITY_SUFFIXES:
                pipe.lrange(q + suffix, 0, -1)
        lists = pipe.execute()
    text = "\n".join(m for msgs in lists for m in msgs)
    seen = store.r.hgetall(missing_key)
    published, absent = [], set()
    for job in jobs:
        jid = job["id"]
        if job["status"] != "queued" or jid in text:
            continue
        absent.add(jid)
        since = float(seen.get(jid) or 0)
        if not since:
            store.r.hset(missing_key, jid, f"{now:.3f}")
        elif now - since >= after_s:
            enqueue(jid, job.get("queue") or "cpu")
            store.r.hdel(missing_key, jid)
            absent.discard(jid)
            published.append(jid)
    stale = [jid for jid in seen if jid not in absent]
    if stale:
        store.r.hdel(missing_key, *stale)
    sweep_scheduler.advance_open(store, enqueue)
    return published


def fill(store: Any, app: Any, n: int) -> None:
    from tricklab.contract import TRAIN_TASK

    for i in range(n):
        rec = store.create_job(SPEC, queue="cpu")
        if i % 100 != 99:  # 1% lost their message
            app.send_task(TRAIN_TASK, args=[rec["id"]], queue="cpu")


def rounds(fn: Any, store: Any, app: Any, k: int) -> list[float]:
    out = []
    for _ in range(k):
        store.r.delete(store.keys.reconcile_lock, store.keys.reconcile_missing)
        t0 = time.perf_counter()
        fn(store, app, after_s=3600.0, lock_s=5.0, owner="bench")
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="2000,10000")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tricklab-bench-reconcile-"))
    port = free_port()
    exe = shutil.which("redis-server")
    assert exe, "redis-server must be on PATH"
    redis_proc = subprocess.Popen(
        [exe, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    os.environ["REDIS_URL"] = url
    try:
        from tricklab.server.connection import connect
        from tricklab.server.store import Store
        from worker.celery_app import app
        from worker.reconcile import reconcile

        app.conf.broker_url = app.conf.result_backend = url
        store = Store(connect(url), "tl", 100)
        deadline = time.monotonic() + 10
        while True:
            try:
                store.r.ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        have = 0
        print(f"reconciler round (median of {args.rounds}), 1% of jobs missing from the broker")
        for n in sorted(int(x) for x in args.sizes.split(",")):
            fill(store, app, n - have)
            have = n
            assert len(store.queued_jobs()) == n
            old = statistics.median(rounds(old_reconcile, store, app, max(1, args.rounds // 2)))
            new = statistics.median(rounds(reconcile, store, app, args.rounds))
            print(
                f"  {n:>6} queued: before {old * 1000:8.1f} ms   after {new * 1000:7.1f} ms"
                f"   ({old / new:.1f}x faster){'' if new < 0.2 else '   OVER the 0.2 s target'}"
            )
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
