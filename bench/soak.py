"""Soak: jobs submitted while a chaos loop kills workers (SIGKILL/SIGTERM) and Redis
(kill -9 + restart from AOF) at random; at the end every job is terminal, succeeded ==
submitted - cancelled, attempts never overlapped, no curve has a gap or duplicate.

    .venv/bin/python bench/soak.py [--jobs 50] [--seconds 180] [--workers 2]

Loopback only: a private redis-server, API and Celery workers on free ports; stops by itself.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import httpx
    import support as cf  # test helpers: a private Redis, the API and workers as processes
    from support import assert_attempts_never_overlap, assert_curves_continuous
    from support import reliability_spec as spec

    rng = random.Random(a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="tricklab-soak-"))
    rs = cf.RedisServer(cf.free_port(), tmp / "redis", fsync="always")
    rs.dir.mkdir()
    rs.start()
    env = cf.service_env(rs.url, tmp / "art", TRICKLAB_LEASE_TTL_S="3", TRICKLAB_WORKER_TTL_S="3",
                         TRICKLAB_MAX_RESTARTS="20", TRICKLAB_RECONCILE_AFTER_S="3",
                         OMP_NUM_THREADS="1", TRICKLAB_MAX_ACTIVE_JOBS="1000",
                         TRICKLAB_RATE_LIMIT_PER_S="1000")  # fmt: skip
    port = cf.free_port()
    api = cf.start_api(env, tmp / "api.log", port)
    url = f"http://127.0.0.1:{port}"
    cf.wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60, what="API")
    n = 0

    def worker():
        nonlocal n
        n += 1
        return cf.start_worker(env, tmp / f"w{n}.log", f"s{n}")

    workers = [worker() for _ in range(a.workers)]
    c = httpx.Client(base_url=url, timeout=10)
    ids, cancelled, kills = [], set(), {"worker_kill": 0, "worker_term": 0, "redis": 0}
    t0 = time.monotonic()
    next_submit = t0
    while time.monotonic() - t0 < a.seconds:
        now = time.monotonic()
        if len(ids) < a.jobs and now >= next_submit:
            try:
                r = c.post("/jobs", json=spec(epochs=rng.choice([2, 3, 4, 6])))
                if r.status_code == 201:
                    ids.append(r.json()["id"])
                    if rng.random() < 0.08:
                        if c.post(f"/jobs/{ids[-1]}/cancel").status_code == 202:
                            cancelled.add(ids[-1])
            except httpx.HTTPError:
                pass
            next_submit = now + a.seconds * 0.6 / a.jobs
        if rng.random() < 0.04:  # chaos, ~every 2.5 s at 0.1 s ticks
            what = rng.choice(["worker_kill", "worker_kill", "worker_term", "redis"])
            kills[what] += 1
            if what == "redis":
                rs.kill()
                time.sleep(rng.uniform(0.5, 3))
                rs.start()
            else:
                w = rng.choice(workers)
                w.signal(signal.SIGKILL if what == "worker_kill" else signal.SIGTERM)
                try:
                    w.proc.wait(70)
                except Exception:
                    w.signal(signal.SIGKILL)
                workers[workers.index(w)] = worker()
        time.sleep(0.1)
    chaos_end = time.monotonic()
    deadline = chaos_end + 240
    jobs = {}
    while time.monotonic() < deadline:
        try:
            jobs = {i: c.get(f"/jobs/{i}").json() for i in ids}
        except httpx.HTTPError:
            time.sleep(1)
            continue
        if all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs.values()):
            break
        time.sleep(1)
    drain = time.monotonic() - chaos_end
    import redis

    r = redis.Redis(port=rs.port, decode_responses=True)
    counts: dict[str, int] = {}
    for j in jobs.values():
        counts[j["status"]] = counts.get(j["status"], 0) + 1
    n_cancel = counts.get("cancelled", 0)
    problems = []
    for i, j in jobs.items():
        try:
            assert_attempts_never_overlap(r, i)
            if j["status"] == "succeeded":
                assert_curves_continuous(c, j)
        except AssertionError as e:
            problems.append(f"{i}: {str(e)[:200]}")
    attempts = sum(j["attempts"] for j in jobs.values())
    print(f"submitted {len(ids)}, {counts}, cancel requests {len(cancelled)}")
    print(
        f"chaos {a.seconds:.0f}s: {kills}; drain after chaos {drain:.1f}s; total attempts {attempts}"
    )
    print(
        f"succeeded == submitted - cancelled: {counts.get('succeeded', 0) == len(ids) - n_cancel}"
    )
    print(f"problems: {len(problems)}", *problems[:10], sep="\n  ")
    for w in workers:
        w.stop(10)
    api.stop()
    rs.kill()
    ok = counts.get("succeeded", 0) == len(ids) - n_cancel and not problems
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
