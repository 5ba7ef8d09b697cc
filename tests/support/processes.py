"""Real processes for the tests: a private redis-server, the API under uvicorn, Celery workers.

Each runs in its own session (so a kill reaches a worker's pool children too) and logs
to a file that a failing test can print with `Proc.tail()`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    """A private redis-server on its own port and data dir, so tests can kill and restart it.

    AOF on by default (a restart after kill -9 recovers the data); `aof=False` for a
    throwaway server.
    """

    port: int
    dir: Path
    fsync: str = "everysec"  # the reliability tests use "always", as `make up` does
    aof: bool = True
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server must be on PATH for the tests"
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes" if self.aof else "no",
                "--appendfsync",
                self.fsync,
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        wait_for(lambda: redis.Redis(port=self.port).ping(), 10, what="redis-server")

    def client(self):
        import redis

        return redis.Redis(port=self.port, decode_responses=True)

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def service_env(redis_url: str, artifact_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRICKLAB_", "CUDA"))}
    env.update(
        REDIS_URL=redis_url,
        ARTIFACT_DIR=str(artifact_dir),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        TRICKLAB_WORKER_TTL_S="5",
    )
    env.update(extra)
    return env


@dataclass
class Proc:
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        self._fh = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        # A new session so kill() reaches the worker's child processes too.
        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=ROOT,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        if self.proc and self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(10)
        if hasattr(self, "_fh"):
            self._fh.close()

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def worker_argv(name: str, queues: str = "cpu") -> list[str]:
    """`celery worker` as `make up` runs it (worker.launch): one pool child."""
    from worker.launch import worker_command

    return worker_command(name, queues, 1, "INFO")


def start_worker(env: dict[str, str], log: Path, name: str, queues: str = "cpu") -> Proc:
    return Proc(worker_argv(name, queues), env, log).start()


def start_api(env: dict[str, str], log: Path, port: int) -> Proc:
    return Proc(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env,
        log,
    ).start()


@dataclass
class ApiProc:
    """An API process under uvicorn on its own Redis database, without a worker."""

    url: str
    redis_url: str
    artifact_dir: Path
    env: dict[str, str]
    proc: Proc


def launch_api(redis_port: int, tmp_path_factory, db: int, name: str, **extra: str) -> ApiProc:
    """Flush Redis database `db`, start uvicorn api.main:app on it, wait for /healthz."""
    import redis

    art = tmp_path_factory.mktemp(f"{name}-artifacts")
    logs = Path(os.environ.get("TRICKLAB_TEST_LOGS", tmp_path_factory.mktemp(f"{name}-logs")))
    logs.mkdir(parents=True, exist_ok=True)
    redis_url = f"redis://127.0.0.1:{redis_port}/{db}"
    redis.Redis.from_url(redis_url).flushdb()
    env = service_env(redis_url, art, **extra)
    port = free_port()
    proc = start_api(env, logs / f"{name}.log", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60, what="API")
    except TimeoutError:
        print("API log:\n", proc.tail())
        raise
    return ApiProc(url, redis_url, art, env, proc)
