"""API throughput: GET /jobs/{id} vs GET /healthz on the same server, 32 connections.

The job is a finished one (full record: spec, progress, metrics, best, result), so the
request reads and decodes a real Redis hash. Rounds alternate healthz / job so drift
on a shared machine hits both. Load generator: `wrk` (Debian package `wrk`) when it is
on PATH, else a Python asyncio client (which competes with the server for the CPU, so
its absolute numbers are lower; the ratio is still measured in one run).

    python bench/api_load.py [--seconds 5] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Stack  # noqa: E402


def wrk_rps(url: str, seconds: float, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert errors is None, f"{url}: {errors.group(0)}"
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def python_rps(url: str, seconds: float, connections: int) -> float:
    async def run() -> int:
        done = 0
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=10) as c:

            async def loop() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    r = await c.get(url)
                    assert r.status_code == 200, r.text
                    done += 1

            await asyncio.gather(*(loop() for _ in range(connections)))
        return done

    return asyncio.run(run()) / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=32)
    args = p.parse_args()
    rps = wrk_rps if shutil.which("wrk") else python_rps
    with Stack() as stack:
        spec = {"data": {"dataset": "digits"}, "training": {"epochs": 2, "device": "cpu"}}
        job_id = httpx.post(f"{stack.api_url}/jobs", json=spec).json()["id"]
        deadline = time.monotonic() + 120
        while httpx.get(f"{stack.api_url}/jobs/{job_id}").json()["status"] != "succeeded":
            assert time.monotonic() < deadline, "the bench job did not finish"
            time.sleep(0.2)
        urls = {"healthz": f"{stack.api_url}/healthz", "job": f"{stack.api_url}/jobs/{job_id}"}
        rps(urls["healthz"], 1, args.connections)  # warm up
        got: dict[str, list[float]] = {"healthz": [], "job": []}
        for _ in range(args.rounds):
            for name, url in urls.items():
                got[name].append(rps(url, args.seconds, args.connections))
    h, j = statistics.median(got["healthz"]), statistics.median(got["job"])
    print(f"load generator: {rps.__name__}, {args.connections} connections, "
          f"{args.rounds} × {args.seconds:g} s per endpoint, alternating")  # fmt: skip
    print(
        f"  GET /healthz      {h:8.0f} req/s  (rounds: {', '.join(f'{x:.0f}' for x in got['healthz'])})"
    )
    print(
        f"  GET /jobs/{{id}}   {j:8.0f} req/s  (rounds: {', '.join(f'{x:.0f}' for x in got['job'])})"
    )
    print(f"  ratio job / healthz  {j / h:.2f}   (target ≥ 0.5)")


if __name__ == "__main__":
    main()
