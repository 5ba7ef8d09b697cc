"""Attack figures (issue 10), streams and auth: what one hostile tenant does to another.

A private redis-server and one API process (TRICKLAB_AUTH=required, no worker: jobs stay
queued, so their event streams stay open). Two tenants, A (the attacker) and B.

- streams held: B's GET /jobs/{id} latency (p50/p99, sequential) with no streams open,
  then with A holding `--streams` real SSE connections (raw sockets) over `--jobs` jobs;
  how many streams were held, how many of B's requests failed, and the API's CPU while
  it only holds them.
- auth guesses: one client sending wrong secrets for `--guess-s` seconds, as fast as it
  can: how many reached key verification (401) and how many were refused (429).

    .venv/bin/python bench/attack.py                   # this checkout
    .venv/bin/python bench/attack.py --root /tmp/old   # another tree (e.g. `git archive HEAD`)

The figures are ratios to a baseline measured in the same run; nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the raw-socket SSE opener the tests use
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import free_port, percentile  # noqa: E402
from support.sse_flood import open_many  # noqa: E402

from tricklab.server.apikeys import KeyRing  # noqa: E402
from tricklab.server.connection import connect  # noqa: E402

SPEC = {"data": {"dataset": "digits"}, "training": {"epochs": 1}}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latencies(url: str, key: str, job_id: str, n: int) -> tuple[list[float], dict[int, int]]:
    codes: dict[int, int] = {}
    out = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        c.get(f"/jobs/{job_id}")  # warm the connection
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.get(f"/jobs/{job_id}")
            out.append(time.perf_counter() - t0)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
    return out, codes


def guesses(url: str, key_id: str, seconds: float) -> dict[int, int]:
    codes: dict[int, int] = {}
    with httpx.Client(base_url=url, timeout=30) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            bad = f"tl_{key_id}_{secrets.token_hex(24)}"
            r = c.get("/jobs", headers={"Authorization": f"Bearer {bad}"})
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
    return codes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="source tree the API runs from")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--requests", type=int, default=300, help="B's GETs per measurement")
    ap.add_argument("--guess-s", type=float, default=5.0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tricklab-attack-"))
    rport, aport = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{rport}/0"
    url = f"http://127.0.0.1:{aport}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLAB_")}
    env.update(
        REDIS_URL=redis_url,
        ARTIFACT_DIR=str(tmp / "artifacts"),
        PYTHONPATH=str(args.root),
        TRICKLAB_AUTH="required",
        TRICKLAB_MAX_STREAMS_PER_KEY=str(args.streams + 100),
        TRICKLAB_MAX_ACTIVE_JOBS=str(args.jobs + 10),
        TRICKLAB_LOG_LEVEL="WARNING",
    )
    procs: list[subprocess.Popen] = []
    logs = open(tmp / "logs", "ab")  # noqa: SIM115 - closed below
    try:
        procs.append(
            subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", "--port", str(rport),
                 "--save", "", "--dir", str(tmp)],
                stdout=logs, stderr=logs, start_new_session=True,
            )
        )  # fmt: skip
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(aport),
             "--log-level", "warning"],
            env=env, cwd=args.root, stdout=logs, stderr=logs, start_new_session=True,
        )  # fmt: skip
        procs.append(api)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the API did not start; logs in {tmp}"
            time.sleep(0.2)
        ring = KeyRing(connect(redis_url), "tl")
        key_a, _ = ring.create(
            "a", "tenant-a", {"rate_limit_per_s": 1e6, "rate_limit_burst": 10**6}
        )
        key_b, rec_b = ring.create(
            "b", "tenant-b", {"rate_limit_per_s": 1e6, "rate_limit_burst": 10**6}
        )
        with httpx.Client(base_url=url, timeout=30) as c:
            ha, hb = {"Authorization": f"Bearer {key_a}"}, {"Authorization": f"Bearer {key_b}"}
            jobs_a = [c.post("/jobs", json=SPEC, headers=ha).json()["id"] for _ in range(args.jobs)]
            job_b = c.post("/jobs", json=SPEC, headers=hb).json()["id"]

        base, base_codes = latencies(url, key_b, job_b, args.requests)

        async def hold() -> tuple[int, dict, list[float], dict[int, int], float, float]:
            paths = [f"/jobs/{jobs_a[i % args.jobs]}/events" for i in range(args.streams)]
            t0 = time.perf_counter()
            streams = await open_many(url, paths, ha, parallel=50)
            opened_s = time.perf_counter() - t0
            kinds: dict = {}
            for s in streams:
                k = type(s).__name__ if isinstance(s, BaseException) else s.status
                kinds[k] = kinds.get(k, 0) + 1
            try:
                cpu0, w0 = cpu_seconds(api.pid), time.monotonic()
                await asyncio.sleep(5)
                idle_cpu = (cpu_seconds(api.pid) - cpu0) / (time.monotonic() - w0)
                loaded, codes = await asyncio.to_thread(latencies, url, key_b, job_b, args.requests)
            finally:
                for s in streams:
                    if not isinstance(s, BaseException):
                        s.close()
            return kinds.get(200, 0), kinds, loaded, codes, idle_cpu, opened_s

        held, kinds, loaded, codes, idle_cpu, opened_s = asyncio.run(hold())
        time.sleep(2)
        guess = guesses(url, rec_b.id, args.guess_s)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        logs.close()
        shutil.rmtree(tmp, ignore_errors=True)

    def ms(xs: list[float], q: float) -> float:
        return percentile(xs, q) * 1000

    print(f"API from {args.root}")
    print(f"streams held: {held}/{args.streams} (answers: {kinds}; opened in {opened_s:.1f} s)")
    print(f"API CPU while only holding them: {idle_cpu * 100:.0f}% of a core")
    print(
        f"B GET /jobs/{{id}}, no streams:    p50 {ms(base, 50):.1f} ms  p99 {ms(base, 99):.1f} ms  {base_codes}"
    )
    print(
        f"B GET /jobs/{{id}}, {held} streams: p50 {ms(loaded, 50):.1f} ms  p99 {ms(loaded, 99):.1f} ms  {codes}"
    )
    print(
        f"  ratio to baseline: p50 x{ms(loaded, 50) / ms(base, 50):.2f}  p99 x{ms(loaded, 99) / ms(base, 99):.2f}"
    )
    n = sum(guess.values())
    print(
        f"wrong-secret guesses from one client in {args.guess_s:g} s: {n} requests "
        f"({n / args.guess_s:.0f}/s), {guess.get(401, 0)} checked (401), "
        f"{guess.get(429, 0)} refused (429): {guess.get(401, 0) / args.guess_s:.1f} checked guesses/s"
    )  # fmt: skip


if __name__ == "__main__":
    main()
