"""GET /jobs page time at 2,000 and 10,000 jobs of one tenant: sorted and filtered pages
(tricklab.server.listing: pipelined HMGET of the sort's field, sort in Python, HGETALL of
the page) against the default newest-first page (the index, ZREVRANGEBYLEX) and against
the naive way (HGETALL and decode every record, then sort), measured in the same run.

A private redis-server; N job records written by the real Store (the digits spec with
lrs drawn from 5 values, a name with a number), one tenant; all but 100 finished
(claimed and finished through the status scripts; 80% with a best.val_acc), 100 queued
(a tenant's default max_active_jobs). "cold" is the
first call of a process (nothing cached), "warm" the median of --rounds more calls
(a dashboard polling the same view: finished jobs' fields are not read again).

    python bench/listing.py [--sizes 2000,10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools
import json
import random
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
    "data": {"dataset": "digits", "val_fraction": 0.2},
    "model": {"arch": "mlp", "hidden": [32]},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "schedule": {"warmup": None, "decay": {"kind": "cosine", "min_lr": 0.0}, "per": "batch"},
    "training": {"epochs": 3, "batch_size": 64, "seed": 0},
}


ACTIVE = 100  # queued at the end of each fill: the default max_active_jobs of a tenant


def fill(store: Any, start: int, n: int, rng: random.Random) -> None:
    """n more jobs; all but the last ACTIVE finished (80% with a best val_acc, the rest
    failed without one); those of the previous fill that were queued are finished too."""
    for job_id in store.jobs_in("queued", "bench"):
        a, _ = store.claim(job_id, "bench", lease_s=60, max_attempts=3)
        store.finish(job_id, a, "failed")
    for i in range(start, start + n):
        spec = {**SPEC, "name": f"bench run {i}", "optimizer": {**SPEC["optimizer"]}}
        spec["optimizer"]["lr"] = rng.choice([0.01, 0.03, 0.1, 0.3, 1.0])
        job = store.create_job(spec, tenant="bench")
        if i >= start + n - ACTIVE:
            continue
        a, _ = store.claim(job["id"], "bench", lease_s=60, max_attempts=3)
        if rng.random() < 0.8:  # as a worker leaves it
            best = {"val_acc": round(rng.random(), 4), "epoch": 2}
            store.r.hset(store.keys.job(job["id"]), "best", json.dumps(best))
            store.finish(job["id"], a, "succeeded")
        else:
            store.finish(job["id"], a, "failed")


def naive(store: Any, path: tuple[str, ...], desc: bool, limit: int) -> list[str]:
    """Every record read whole and decoded, then sorted: what the bound avoids."""
    ids = store.r.zrevrange(store.keys.jobs("bench"), 0, -1)
    jobs = store.get_jobs(ids)

    def value(j: dict) -> Any:
        node: Any = j
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        return node

    present = [j for j in jobs if value(j) is not None]
    missing = [j for j in jobs if value(j) is None]
    present.sort(key=lambda j: j["id"], reverse=True)
    present.sort(key=value, reverse=desc)
    return [j["id"] for j in (present + missing)[:limit]]


def median_s(fn: Any, k: int) -> float:
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="2000,10000")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tricklab-bench-listing-"))
    port = free_port()
    exe = shutil.which("redis-server")
    assert exe, "redis-server must be on PATH"
    redis_proc = subprocess.Popen(
        [exe, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        from tricklab.server import listing
        from tricklab.server.connection import connect
        from tricklab.server.listing import Sort, list_sorted
        from tricklab.server.store import Store

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
        rng = random.Random(0)
        have = 0
        k = args.rounds
        print(f"GET /jobs, one page of 50 (median of {k}); ratios to the default page")
        for n in sorted(int(x) for x in args.sizes.split(",")):
            fill(store, have, n - have, rng)
            have = n
            base = median_s(lambda: store.list_jobs(tenant="bench", limit=50), k)
            print(f"  {n:>6} jobs: default (newest first)         {base * 1000:8.1f} ms")
            for text in ("-best.val_acc", "spec.optimizer.lr"):
                desc = text.startswith("-")
                sort = Sort(tuple(text.lstrip("-").split(".")), desc)
                run = functools.partial(
                    list_sorted, store, tenant="bench", sort=sort, limit=50, scan_max=10_000
                )
                listing._CACHE = listing._Rows()  # cold: nothing read before
                t0 = time.perf_counter()
                got = [j["id"] for j in run()[0]]
                cold = time.perf_counter() - t0
                assert got == naive(store, sort.path, desc, 50), "orders differ"
                t = median_s(run, k)  # warm: a dashboard polling the same view
                tn = median_s(lambda s=sort, d=desc: naive(store, s.path, d, 50), max(1, k // 2))
                print(
                    f"          sort={text:<18} cold {cold * 1000:7.1f} ms ({cold / base:5.1f}x),"
                    f" warm {t * 1000:7.1f} ms ({t / base:5.1f}x default);"
                    f" naive HGETALL-all {tn * 1000:7.1f} ms ({tn / cold:4.1f}x cold)"
                )
            q = functools.partial(
                list_sorted, store, tenant="bench", q="run 12", limit=50, scan_max=10_000
            )
            t = median_s(q, k)
            print(
                f"          q='run 12' (warm)          {t * 1000:8.1f} ms  ({t / base:5.1f}x default)"
            )
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
