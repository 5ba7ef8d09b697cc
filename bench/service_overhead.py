"""What does the service cost over a plain PyTorch loop doing the same training?

    .venv/bin/python bench/service_overhead.py [--rounds 3] [--epochs 100]   # 1–2 minutes

The job: the built-in digits, the MLP [256, 128], batch 64, SGD at the default
schedule, every trick off, `--epochs` epochs, CPU, one torch thread (OMP_NUM_THREADS=1
in the worker, as the service is run). Through the real service (bench/harness.py:
redis-server, the API over HTTP, one Celery worker): the job's time is finished_at −
started_at from GET /jobs/{id} (claim, data, model, training, checkpoints, the model
file and the finish). The baseline: `bench.train_overhead.plain_train` (the same
model, data and batches, written the way one writes a loop by hand) in a subprocess
with one torch thread, timed from loading the data to the last validation (imports
and first-call costs excluded by a one-epoch warm-up, as the worker has them done). Rounds alternate service and plain;
each side's figure is its fastest round (contention on a shared machine only adds
time), and the per-round ratio's median is printed too. Target: service / plain
≥ 0.95 (speed, i.e. plain time / service time). Wall time on a shared machine swings
by 2× between rounds, so the CPU seconds of each side are printed too (the worker's
pool process, every thread of it, from /proc, over the job; the plain loop's
process_time): what the work costs whatever else runs. `--checkpoint-every 1` runs the job
with a checkpoint at every epoch (the old default) for comparison. Prints figures;
asserts nothing; figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from job_latency import OneThreadStack, run_job  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

PLAIN = """
import time, torch
torch.set_num_threads(1)
import bench.train_overhead as b
from tricks.spec import JobSpec
spec = JobSpec.model_validate({spec!r})
# first-use costs out, as in a warm worker: scikit-learn's file, torch.optim's first
# optimizer (it imports torch._dynamo), the first backward
b.plain_train(spec.model_copy(update={{"training": spec.training.model_copy(update={{"epochs": 1}})}}), b.load_dataset(spec.data, 0))
t, c = time.perf_counter(), time.process_time()
ds = b.load_dataset(spec.data, spec.training.seed)
b.plain_train(spec, ds)
print(time.process_time() - c, time.perf_counter() - t)
"""


def job_spec(epochs: int, checkpoint_every: int | None) -> dict[str, Any]:
    training: dict[str, Any] = {"epochs": epochs, "device": "cpu", "batch_size": 64}
    if checkpoint_every is not None:
        training["checkpoint_every"] = checkpoint_every
    return {
        "name": "overhead",
        "data": {"dataset": "digits"},
        "model": {"arch": "mlp", "hidden": [256, 128]},
        "training": training,
    }


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, every thread of it (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_seconds(c: httpx.Client, spec: dict[str, Any], pid: int) -> tuple[float, float]:
    """(CPU seconds of the worker's pool process over the job, finished_at − started_at)."""
    cpu = cpu_seconds(pid)
    job = run_job(c, spec)
    cpu = cpu_seconds(pid) - cpu
    t0 = datetime.fromisoformat(job["started_at"]).timestamp()
    return cpu, datetime.fromisoformat(job["finished_at"]).timestamp() - t0


def plain_seconds(spec: dict[str, Any], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the plain loop in a subprocess."""
    out = subprocess.run(
        [sys.executable, "-c", PLAIN.format(spec=spec)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    ).stdout
    cpu, wall = out.split()[-2:]
    return float(cpu), float(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--checkpoint-every", type=int, default=None)
    args = ap.parse_args()
    spec = job_spec(args.epochs, args.checkpoint_every)
    service: list[tuple[float, float]] = []  # (cpu, wall)
    plain: list[tuple[float, float]] = []
    with OneThreadStack() as stack, httpx.Client(base_url=stack.api_url, timeout=30) as c:
        first = run_job(c, job_spec(1, None))  # the worker's first job: fresh-worker costs out
        pid = int(redis.Redis.from_url(stack.redis_url).hget(f"tl:job:{first['id']}", "worker_pid"))
        for i in range(args.rounds):
            pair = [
                lambda: service.append(service_seconds(c, spec, pid)),
                lambda: plain.append(plain_seconds(spec, stack.env)),
            ]
            for run in pair if i % 2 == 0 else pair[::-1]:
                run()
    wall_s, wall_p = [w for _, w in service], [w for _, w in plain]
    cpu_s, cpu_p = [c for c, _ in service], [c for c, _ in plain]
    ratio = min(wall_p) / min(wall_s)
    paired = statistics.median(p / s for p, s in zip(wall_p, wall_s, strict=True))
    cpu_ratio = min(cpu_p) / min(cpu_s)
    every = args.checkpoint_every
    print(
        f"digits, mlp [256, 128], batch 64, {args.epochs} epochs, tricks off, 1 torch thread, "
        f"checkpoint_every {every if every is not None else 'null (by time, 30 s)'}; "
        f"best of {args.rounds} alternating rounds"
    )
    print(f"  service (finished_at − started_at)  {min(wall_s):7.3f} s   rounds {_r(wall_s)}")
    print(f"  plain loop (subprocess)             {min(wall_p):7.3f} s   rounds {_r(wall_p)}")
    print(f"  service / plain (speed, wall)       {ratio:.3f}  per-round median {paired:.3f}")
    print(
        f"  CPU seconds: service {min(cpu_s):.3f} {_r(cpu_s)}, plain {min(cpu_p):.3f} {_r(cpu_p)}"
    )
    print(f"  service / plain (speed, CPU)        {cpu_ratio:.3f}")
    print("  target >= 0.95")


def _r(xs: list[float]) -> list[float]:
    return [round(x, 3) for x in xs]


if __name__ == "__main__":
    main()
