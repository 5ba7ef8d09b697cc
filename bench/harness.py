"""A private tricklab for benchmarks: redis-server, one CPU worker and the API, on free ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="tricklab-bench-"))
        self.redis_port, self.api_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRICKLAB_")}
        self.env.update(
            REDIS_URL=self.redis_url,
            ARTIFACT_DIR=str(self.tmp / "artifacts"),
            PYTHONPATH=str(ROOT),
            CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        )
        self.procs: list[subprocess.Popen] = []

    def _start(self, args: list[str], log: str) -> None:
        fh = open(self.tmp / log, "ab")  # noqa: SIM115 - lives as long as the process
        self.procs.append(
            subprocess.Popen(
                args, env=self.env, cwd=ROOT, stdout=fh, stderr=fh, start_new_session=True
            )
        )

    def __enter__(self) -> Stack:
        exe = shutil.which("redis-server")
        assert exe, "redis-server must be on PATH"
        self._start(
            [exe, "--port", str(self.redis_port), "--save", "", "--dir", str(self.tmp)],
            "redis.log",
        )
        self._start(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker",
             "-Q", "cpu", "-c", "1", "-n", "bench@%h", "--without-gossip", "--without-mingle",
             "-l", "WARNING"],
            "worker.log",
        )  # fmt: skip
        self._start(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(self.api_port),
             "--log-level", "warning"],
            "api.log",
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the bench stack did not become ready; logs in {self.tmp}")

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


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]
