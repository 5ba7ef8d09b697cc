"""Helpers for tests that run real processes over real connections (imported as `support`).

- `redis_server`: a private redis-server on a free port (AOF on, data in a tmp dir),
  so tests can kill and restart it without touching the machine's Redis.
- `service`: that Redis + one real Celery worker process + the API under uvicorn,
  reached over HTTP with httpx. No eager mode, no fakes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


@dataclass
class RedisServer:
    port: int
    dir: Path
    fsync: str = "everysec"  # the reliability tests use "always", as `make up` does
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
                "yes",
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


def start_worker(env: dict[str, str], log: Path, name: str, queues: str = "cpu") -> Proc:
    return Proc(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery_app:app",
            "worker",
            "-Q",
            queues,
            "-c",
            "1",
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
        ],
        env,
        log,
    ).start()


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
class Service:
    redis: RedisServer
    artifact_dir: Path
    api_url: str
    env: dict[str, str]
    logs: Path
    api: Proc
    workers: list[Proc] = field(default_factory=list)

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30, **kw)

    def add_worker(self, name: str, queues: str = "cpu") -> Proc:
        w = start_worker(self.env, self.logs / f"{name}.log", name, queues)
        self.workers.append(w)
        return w

    def wait_job(
        self, job_id: str, statuses=("succeeded", "failed", "cancelled"), timeout: float = 120
    ) -> dict:
        with self.client() as c:
            return wait_for(
                lambda: (j := c.get(f"/jobs/{job_id}").json()).get("status") in statuses and j,
                timeout,
                0.1,
                what=f"job {job_id} to reach {statuses}",
            )


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


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    """The one error shape of DESIGN.md; returns the error object."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "details"}, err
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err
