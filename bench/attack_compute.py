"""Bench: one tenant's heavy compute against the API (issue 10), before and after.

Figures printed:
1. the planned-curve functions themselves at 10M and 40M steps: lr_curve + keep_indices
   (what GET /jobs/{id}/lr and POST /schedules/preview did) vs lr_sampled: time and peak
   allocations (tracemalloc), in this process;
2. /healthz latency p50/p99 idle and under 60 concurrent previews: against the code as
   committed (HEAD, `git archive` into a temp dir: the "before") at 1M steps (at 10M it
   needs ~16 GB), and the working tree ("after") at 1M and at 10M steps (max_total_steps,
   the largest preview allowed), with the default heavy pool and with heavy_per_tenant
   raised to 60, as if 60 tenants sent them;
3. GET /jobs/{id}/lr?max_points=1000 on a job planned at 10M steps: time per request and
   the API process's RSS growth (VmRSS / VmHWM from /proc), before and after.

Each API runs on its own redis-server with no worker (the jobs stay queued: planning is
all this needs). `python bench/attack_compute.py [--skip-before] [--n 60]`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PREVIEW_10M = {
    "lr": 0.1,
    "epochs": 1000,
    "steps_per_epoch": 10_000,
    "schedule": {"warmup": {"epochs": 5}, "decay": {"kind": "cosine"}},
}
RESTARTS_10M = {**PREVIEW_10M, "schedule": {"decay": {"kind": "cosine_restarts", "t0_epochs": 3}}}
# The code before holds a full float64 curve and its temporaries per request (~470 MiB at
# 10M steps): 60 at once took 16 GB here. Its attack runs at 1M steps, and any API past
# this RSS is killed.
PREVIEW_1M = {**PREVIEW_10M, "steps_per_epoch": 1_000}
MAX_RSS_KIB = 6 * 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """redis-server + uvicorn api.main:app from `root` (a checkout), no worker."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root, self.tmp = root, Path(tempfile.mkdtemp(prefix="tricklab-attack-"))
        self.redis_port, self.port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLAB_")}
        self.env.update(
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            ARTIFACT_DIR=str(self.tmp / "artifacts"),
            PYTHONPATH=str(root),
            TRICKLAB_LOG_LEVEL="WARNING",
            TRICKLAB_RATE_LIMIT_PER_S="0",
            **env,
        )
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Api:
        log = open(self.tmp / "log", "ab")  # noqa: SIM115 - lives as long as the processes
        exe = shutil.which("redis-server")
        assert exe, "redis-server must be on PATH"
        self.procs.append(
            subprocess.Popen(
                [exe, "--port", str(self.redis_port), "--save", "", "--dir", str(self.tmp)],
                stdout=log, stderr=log, start_new_session=True,
            )
        )  # fmt: skip
        self.api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(self.port),
             "--log-level", "warning"],
            env=self.env, cwd=self.root, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        self.procs.append(self.api)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the API did not start; log in {self.tmp}")

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mem_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the API process in KiB."""
        vals = {}
        for line in Path(f"/proc/{self.api.pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = int(v.split()[0])
        return vals["VmRSS"], vals["VmHWM"]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def ms(x: float) -> str:
    return f"{x * 1e3:.1f} ms" if x < 10 else f"{x:.1f} s"


# ------------------------------------------------------------- 1. the functions


def functions() -> None:
    from api.downsample import keep_indices
    from tricks.schedules import lr_curve, lr_sampled
    from tricks.spec import ScheduleSpec

    print("1. planned curve, max_points=1000: lr_curve + keep_indices (before) vs lr_sampled")
    for name, sched in (
        ("warm-up + cosine", PREVIEW_10M["schedule"]),
        ("cosine restarts (walked)", RESTARTS_10M["schedule"]),
    ):
        s = ScheduleSpec.model_validate(sched)
        for spe in (10_000, 40_000):
            kw = dict(lr0=0.1, schedule=s, steps_per_epoch=spe, epochs=1000)
            figs = []
            for fn in (
                lambda kw=kw: keep_indices(lr_curve(**kw), 1000),
                lambda kw=kw: lr_sampled(**kw, max_points=1000),
            ):
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0  # timed without tracemalloc, which slows it
                tracemalloc.start()
                fn()
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                figs.append((dt, peak))
            (tb, mb), (ta, ma) = figs
            print(
                f"   {name:26s} {spe * 1000 / 1e6:.0f}M steps: before {ms(tb)}, "
                f"{mb / 2**20:.0f} MiB peak; after {ms(ta)}, {ma / 2**20:.2f} MiB peak "
                f"({tb / ta:.0f}x faster, {mb / max(ma, 1):.0f}x less memory)"
            )


# ------------------------------------------------------ 2. healthz under attack


class Prober(threading.Thread):
    """GET /healthz back to back (one at a time), recording each latency; watches the
    API's RSS and kills it past MAX_RSS_KIB (this machine is shared)."""

    def __init__(self, api: Api) -> None:
        super().__init__(daemon=True)
        self.api, self.lat, self.stop = api, [], threading.Event()
        self.peak_kib, self.killed = 0, False
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self.stop.is_set() and not self.killed:
            try:
                rss = self.api.mem_kib()[0]
            except (OSError, KeyError):
                return
            self.peak_kib = max(self.peak_kib, rss)
            if rss > MAX_RSS_KIB:
                self.killed = True
                os.killpg(self.api.api.pid, signal.SIGKILL)
            time.sleep(0.1)

    def run(self) -> None:
        with httpx.Client(timeout=300) as c:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    c.get(f"{self.api.url}/healthz")
                except httpx.HTTPError:
                    if self.killed:
                        return
                self.lat.append(time.perf_counter() - t0)
                time.sleep(0.05)


def idle_health(url: str, n: int = 100) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            c.get(f"{url}/healthz")
            out.append(time.perf_counter() - t0)
    return out


async def flood(url: str, body: dict, n: int) -> tuple[dict[int, int], float]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=600, limits=limits) as c:
        t0 = time.perf_counter()
        rs = await asyncio.gather(
            *(c.post(f"{url}/schedules/preview", json=body) for _ in range(n)),
            return_exceptions=True,
        )
        dt = time.perf_counter() - t0
    codes: dict[int, int] = {}
    for r in rs:
        k = r.status_code if isinstance(r, httpx.Response) else -1
        codes[k] = codes.get(k, 0) + 1
    return codes, dt


def attack(api: Api, label: str, body: dict, n: int) -> None:
    idle = idle_health(api.url)
    probe = Prober(api)
    probe.start()
    codes, dt = asyncio.run(flood(api.url, body, n))
    probe.stop.set()
    probe.join()
    lat = probe.lat or [float("nan")]
    steps = body["epochs"] * body["steps_per_epoch"]
    print(
        f"   {label} ({steps / 1e6:g}M steps): healthz idle p50 {ms(pct(idle, 50))} "
        f"p99 {ms(pct(idle, 99))}; under attack p50 {ms(pct(lat, 50))} p99 {ms(pct(lat, 99))} "
        f"max {ms(max(lat))} ({len(lat)} probes); {n} previews answered {codes} in {ms(dt)}; "
        f"API RSS peak {probe.peak_kib / 1024:.0f} MiB"
        + (" (KILLED past the bench's RSS cap)" if probe.killed else "")
    )


# --------------------------------------------------------- 3. GET /jobs/{id}/lr


def job_at_10m(c: httpx.Client) -> str:
    """An upload of 12,500 rows (10,000 after the 20% validation split), batch 1, 1000
    epochs: 10,000,000 planned steps."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    x = rng.normal(size=(12_500, 4)).astype(np.float32)
    np.savez(buf, x=x, y=(x[:, 0] > 0).astype(np.int64))
    r = c.post("/datasets", files={"file": ("rows.npz", buf.getvalue())})
    assert r.status_code in (200, 201), r.text
    spec = {
        "data": {"dataset": r.json()["id"], "val_fraction": 0.2},
        "schedule": {"warmup": {"epochs": 5}, "decay": {"kind": "cosine"}},
        "training": {"epochs": 1000, "batch_size": 1},
    }
    r = c.post("/jobs", json=spec)
    assert r.status_code == 201, r.text
    assert r.json()["plan"]["total_steps"] == 10_000_000, r.json()["plan"]
    return r.json()["id"]


def lr_requests(api: Api, label: str, n: int = 3) -> None:
    with httpx.Client(base_url=api.url, timeout=600) as c:
        job = job_at_10m(c)
        rss0, _ = api.mem_kib()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.get(f"/jobs/{job}/lr", params={"max_points": 1000})
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
        rss1, hwm = api.mem_kib()
    print(
        f"   {label:8s} {n} requests: median {ms(statistics.median(times))}, "
        f"max {ms(max(times))}; API RSS {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MiB, "
        f"peak {hwm / 1024:.0f} MiB (+{(hwm - rss0) / 1024:.0f} MiB over the start)"
    )


def head_tree() -> Path:
    """The committed code (HEAD) in a temp dir, without touching the checkout."""
    dest = Path(tempfile.mkdtemp(prefix="tricklab-before-"))
    arch = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=arch.stdout, check=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60, help="concurrent previews")
    ap.add_argument("--skip-before", action="store_true", help="only the working tree")
    args = ap.parse_args()

    functions()

    before = None if args.skip_before else head_tree()
    print(f"2. /healthz under {args.n} concurrent previews (default max_points, 100,000)")
    try:
        if before is not None:
            with Api(before) as api:
                attack(api, "before (HEAD), warm-up + cosine", PREVIEW_1M, args.n)
        with Api(ROOT) as api:
            attack(api, "after, default pool, warm-up + cosine", PREVIEW_1M, args.n)
            attack(api, "after, default pool, warm-up + cosine", PREVIEW_10M, args.n)
            attack(api, "after, default pool, cosine restarts", RESTARTS_10M, args.n)
        with Api(ROOT, TRICKLAB_HEAVY_PER_TENANT=str(args.n)) as api:
            attack(api, "after, per-tenant cap off, warm-up + cosine", PREVIEW_1M, args.n)
            attack(api, "after, per-tenant cap off, warm-up + cosine", PREVIEW_10M, args.n)
            attack(api, "after, per-tenant cap off, cosine restarts", RESTARTS_10M, args.n)

        print("3. GET /jobs/{id}/lr?max_points=1000, job planned at 10,000,000 steps")
        if before is not None:
            with Api(before) as api:
                lr_requests(api, "before")
        with Api(ROOT) as api:
            lr_requests(api, "after")
    finally:
        if before is not None:
            shutil.rmtree(before, ignore_errors=True)


if __name__ == "__main__":
    main()
