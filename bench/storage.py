"""Storage per job before and after retention (tricklab.server.retention), on a private stack.

Trains a few tiny jobs through the real API and worker, then measures, per finished job:
its Redis keys and bytes (MEMORY USAGE of every key named after it, SAMPLES 0) and its
files on disk (checkpoints, model); then applies retention the way the API's round does
(checkpoint pruning once the grace is over, the TTL on jobs finished long ago) and
DELETE /jobs/{id}, and measures again. Prints a table and a JSON line.

    python bench/storage.py [--jobs 4] [--epochs 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, Stack  # noqa: E402

sys.path.insert(0, str(ROOT))
from tricklab.server import retention  # noqa: E402
from tricklab.server.connection import connect  # noqa: E402
from tricklab.server.store import Store  # noqa: E402
from tricklab.settings import Settings  # noqa: E402


def spec(epochs: int, seed: int) -> dict:
    return {
        "name": f"storage bench {seed}",
        "data": {"dataset": "digits"},
        "model": {"arch": "mlp", "hidden": [64]},
        "training": {"epochs": epochs, "batch_size": 64, "seed": seed, "device": "cpu"},
    }


def redis_usage(r, job_id: str) -> tuple[int, int]:
    """(keys, bytes) of every key named after the job."""
    keys = list(r.scan_iter(match=f"*{job_id}*", count=1000))
    return len(keys), sum(int(r.memory_usage(k, samples=0) or 0) for k in keys)


def disk_usage(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) if d.exists() else 0


def measure(r, art: Path, ids: list[str]) -> dict:
    rows = [(*redis_usage(r, j), disk_usage(art / "jobs" / j)) for j in ids]
    n = len(rows)
    return {
        "keys_per_job": sum(x[0] for x in rows) / n,
        "redis_bytes_per_job": sum(x[1] for x in rows) / n,
        "disk_bytes_per_job": sum(x[2] for x in rows) / n,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--epochs", type=int, default=30)
    a = p.parse_args()
    with Stack() as st, httpx.Client(base_url=st.api_url, timeout=60) as c:
        r = connect(st.redis_url)
        art = Path(st.env["ARTIFACT_DIR"])
        ids = []
        for i in range(a.jobs):
            resp = c.post("/jobs", json=spec(a.epochs, i))
            resp.raise_for_status()
            ids.append(resp.json()["id"])
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            done = [c.get(f"/jobs/{j}").json()["status"] for j in ids]
            if all(s in ("succeeded", "failed", "cancelled") for s in done):
                break
            time.sleep(1)
        time.sleep(1)  # the worker's last log flush
        before = measure(r, art, ids)
        used_before = int(r.info("memory")["used_memory"])

        store = Store(r, "tl")
        s = Settings(REDIS_URL=st.redis_url, ARTIFACT_DIR=str(art), checkpoint_grace_hours=0)
        t0 = time.perf_counter()
        rep = retention.run_round(store, s)  # finished past the grace: checkpoints shrink
        prune_s = time.perf_counter() - t0
        pruned = measure(r, art, ids)

        # the TTL: the first half "finished 31 days ago", the rest deleted over HTTP
        half = ids[: max(1, len(ids) // 2)]
        for j in half:
            r.hset(f"tl:job:{j}", "finished_at", f"{time.time() - 31 * 86400:.6f}")
        t0 = time.perf_counter()
        rep2 = retention.run_round(store, s)
        ttl_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for j in ids[len(half) :]:
            assert c.delete(f"/jobs/{j}").status_code == 204
        delete_s = (time.perf_counter() - t0) / max(1, len(ids) - len(half))
        after = measure(r, art, ids)
        used_after = int(r.info("memory")["used_memory"])

    print(f"{a.jobs} jobs of {a.epochs} epochs (digits, MLP [64]), per finished job:")
    print(f"{'':28}{'keys':>8}{'Redis bytes':>14}{'disk bytes':>14}")
    for name, m in (
        ("finished (before)", before),
        ("after checkpoint retention", pruned),
        ("after TTL / DELETE", after),
    ):
        print(
            f"{name:28}{m['keys_per_job']:8.1f}{m['redis_bytes_per_job']:14.0f}"
            f"{m['disk_bytes_per_job']:14.0f}"
        )
    ratio = pruned["disk_bytes_per_job"] / max(1.0, before["disk_bytes_per_job"])
    print(f"disk after checkpoint retention / before: {ratio:.3f}")
    print(f"Redis used_memory: {used_before} -> {used_after} bytes")
    print(
        f"round times: prune {prune_s * 1000:.0f} ms, ttl {ttl_s * 1000:.0f} ms; "
        f"DELETE {delete_s * 1000:.0f} ms per job; expired {len(rep2.expired)}, "
        f"checkpoint bytes freed {rep.checkpoint_bytes_freed}"
    )
    print(
        json.dumps(
            {
                "before": before,
                "after_checkpoint_retention": pruned,
                "after_ttl_or_delete": after,
                "disk_ratio": ratio,
                "used_memory": [used_before, used_after],
            }
        )
    )


if __name__ == "__main__":
    main()
