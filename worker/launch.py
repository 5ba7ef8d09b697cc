"""`tricklab worker`: one Celery worker process per GPU, or CPU workers when there is none.

GPUs are found without initialising CUDA here (CUDA_VISIBLE_DEVICES, else
`nvidia-smi -L`); each GPU worker is pinned with CUDA_VISIBLE_DEVICES=<i> and
consumes the `gpu` and `cpu` queues, so inside it the GPU is always `cuda:0`.
Each worker runs in its own session so a terminal Ctrl-C reaches only this
launcher, which forwards one SIGTERM (warm shutdown: running jobs checkpoint and
are re-queued); a second Ctrl-C forwards SIGQUIT (cold shutdown).

    python -m worker.launch [--gpus auto|none|all|0,1] [--cpu-workers N] [--concurrency N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from types import FrameType


def detect_gpus() -> list[str]:
    """Indices of the GPUs this process may use, as strings; never touches CUDA."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def worker_command(name: str, queues: str, concurrency: int, loglevel: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app:app",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "-l",
        loglevel,
    ]


def plan(args: argparse.Namespace) -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, argv, env) of every worker process to start."""
    if args.gpus in ("auto", "all"):
        gpus = detect_gpus()
    elif args.gpus == "none":
        gpus = []
    else:
        gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
    tag = os.getpid()
    procs = []
    for g in gpus:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=g)
        name = f"gpu{g}-{tag}"
        procs.append((name, worker_command(name, "gpu,cpu", 1, args.loglevel), env))
    n_cpu = args.cpu_workers if args.cpu_workers is not None else (0 if gpus else 1)
    for i in range(n_cpu):
        # CPU workers must not grab a GPU that a GPU worker owns.
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        name = f"cpu{i + 1}-{tag}"
        procs.append((name, worker_command(name, "cpu", args.concurrency, args.loglevel), env))
    return procs


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tricklab worker", description=__doc__.split("\n\n")[0])
    p.add_argument("--gpus", default="auto", help="auto|all (detected), none, or ids like 0,1")
    p.add_argument(
        "--cpu-workers",
        type=int,
        default=None,
        help="CPU-only worker processes (default: 1 when there is no GPU, else 0)",
    )
    p.add_argument(
        "--concurrency", type=int, default=1, help="jobs at once per CPU worker (default 1)"
    )
    p.add_argument("--loglevel", default="INFO")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    specs = plan(args)
    if not specs:
        print("tricklab worker: nothing to start (no GPU and --cpu-workers 0)", file=sys.stderr)
        return 2
    procs: dict[str, subprocess.Popen] = {}
    for name, cmd, env in specs:
        gpu = env.get("CUDA_VISIBLE_DEVICES") or "none"
        print(f"tricklab worker: starting {name} (GPU {gpu})", flush=True)
        procs[name] = subprocess.Popen(cmd, env=env, start_new_session=True)

    stopping = {"n": 0}

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping["n"] += 1
        sig = signal.SIGTERM if stopping["n"] == 1 else signal.SIGQUIT
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(sig)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, forward)

    code = 0
    while any(p.poll() is None for p in procs.values()):
        time.sleep(0.5)
        if stopping["n"]:
            continue
        for name, p in procs.items():
            if p.poll() is not None:  # a worker died on its own: stop the rest too
                print(f"tricklab worker: {name} exited with {p.returncode}", file=sys.stderr)
                code = p.returncode or 1
                forward(signal.SIGTERM, None)
                break
    return code


if __name__ == "__main__":
    sys.exit(main())
