"""`make up` / `tricklab up`: Redis (embedded unless REDIS_URL is set), one worker and the API.

Embedded Redis runs from ./var/redis with AOF persistence, so jobs survive a
restart. Run it the first time or the tenth: a Redis left running by an earlier
run (pid file + answering PING) is reused, a stale pid file is ignored, and a busy
port makes it pick a free one. Ctrl-C stops everything in order: API, worker
(running jobs checkpoint and go back to the queue), then Redis.

No torch here: this process only starts the others.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from tricklab.procs import pid_alive

INSTALL_REDIS = """\
tricklab up needs a redis-server binary (Redis >= 6) or REDIS_URL pointing at a Redis.
Install one of:
  Debian/Ubuntu:  sudo apt-get install redis-server
  macOS:          brew install redis
  conda:          conda install -c conda-forge redis-server
or run one in Docker:  docker run -p 6379:6379 redis:7 --appendonly yes
                       REDIS_URL=redis://127.0.0.1:6379/0 make up"""


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_redis_server() -> str | None:
    exe = shutil.which("redis-server")
    if exe:
        return exe
    try:  # the `redis-server` wheel on PyPI ships a binary
        import redis_server  # type: ignore[import-not-found]

        path = getattr(redis_server, "REDIS_SERVER_PATH", None)
        return str(path) if path and Path(path).exists() else None
    except ImportError:
        return None


def ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Embedded:
    """A private redis-server under var/redis; reused when an earlier run left one up."""

    def __init__(self, root: Path, port: int) -> None:
        self.dir = root / "var" / "redis"
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.reused_pid: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        pidfile, portfile = self.dir / "redis.pid", self.dir / "port"
        if pidfile.exists() and portfile.exists():
            try:
                pid, port = int(pidfile.read_text()), int(portfile.read_text())
            except ValueError:
                pid, port = 0, 0
            if pid and pid_alive(pid) and ping(port):
                self.port, self.reused_pid = port, pid
                print(f"  reusing the embedded Redis from an earlier run (pid {pid})")
                return
            pidfile.unlink(missing_ok=True)  # stale
        exe = find_redis_server()
        if exe is None:
            sys.exit(INSTALL_REDIS)
        if not port_free("127.0.0.1", self.port):
            self.port = free_port()
        # Our own session: a terminal Ctrl-C reaches up.py, which stops Redis last.
        self.proc = subprocess.Popen(
            [
                exe,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--pidfile", str(pidfile),
                "--appendonly", "yes",
                "--appendfsync", "always",  # nothing acknowledged is lost on kill -9 (see README: Reliability)
                "--maxmemory-policy", "noeviction",
                "--logfile", str(self.dir / "redis.log"),
            ],
            start_new_session=True,
        )  # fmt: skip
        portfile.write_text(str(self.port))
        deadline = time.monotonic() + 15
        while not ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"redis-server did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        pid = self.proc.pid if self.proc else self.reused_pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)  # Redis fsyncs the AOF and exits
        except ProcessLookupError:
            return
        if self.proc:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tricklab up", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--redis-port", type=int, default=6380, help="embedded Redis port")
    p.add_argument("--no-worker", action="store_true", help="start only Redis and the API")
    p.add_argument("--worker-args", default="", help="extra args for `tricklab worker`")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    root = Path.cwd()
    env = dict(os.environ)
    env.setdefault("ARTIFACT_DIR", str(root / "var" / "artifacts"))
    env["PYTHONUNBUFFERED"] = "1"

    print("tricklab up")
    redis: Embedded | None = None
    if env.get("REDIS_URL"):
        print(f"  Redis:    {env['REDIS_URL']} (from REDIS_URL)")
    else:
        redis = Embedded(root, args.redis_port)
        redis.start()
        env["REDIS_URL"] = redis.url
        print(f"  Redis:    {redis.url} (embedded, AOF in {redis.dir})")

    if not port_free(args.host, args.port):
        if redis:
            redis.stop()
        sys.exit(f"port {args.port} on {args.host} is busy; run with PORT=<another port>")

    procs: list[tuple[str, subprocess.Popen]] = []
    if not args.no_worker:
        cmd = [sys.executable, "-m", "worker.launch", *args.worker_args.split()]
        procs.append(("worker", subprocess.Popen(cmd, env=env, start_new_session=True)))
    api_cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", args.host]
    api_cmd += ["--port", str(args.port), "--log-level", "warning"]
    procs.append(("api", subprocess.Popen(api_cmd, env=env, start_new_session=True)))

    stopping = {"n": 0}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping["n"] += 1

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    base = f"http://{args.host}:{args.port}"
    if wait_http(f"{base}/healthz", procs, stopping, 60):
        print(f"  API:       {base}")
        print(f"  API docs:  {base}/docs")
        print(f"  Dashboard: {base}/")
        print(f"  Artifacts: {env['ARTIFACT_DIR']}")
        print("")
        print("  !! NO AUTHENTICATION: anyone who can reach this port can submit jobs. !!")
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"  !! HOST={args.host} is not loopback: put a proxy with auth in front. !!")
        else:
            print("  !! Listening on loopback only; keep it that way without a proxy.      !!")
        print("\n  Ctrl-C stops everything.", flush=True)

    code = 0
    while not stopping["n"]:
        dead = [(n, p) for n, p in procs if p.poll() is not None]
        if dead:
            name, p = dead[0]
            print(f"tricklab up: {name} exited with {p.returncode}; stopping", file=sys.stderr)
            code = p.returncode or 1
            break
        time.sleep(0.3)

    print("\ntricklab up: stopping (API, worker, then Redis)...", flush=True)
    for name, p in reversed(procs):  # API first: no new jobs while the worker drains
        stop(p, 60 if name == "worker" else 10, stopping)
    if redis:
        redis.stop()
    print("tricklab up: stopped")
    return code


def wait_http(url: str, procs: list, stopping: dict, timeout: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping["n"]:
        if any(p.poll() is not None for _, p in procs):
            return False
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def stop(p: subprocess.Popen, timeout: float, stopping: dict) -> None:
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        if stopping["n"] > 1:  # a second Ctrl-C: do not wait for the drain
            break
        time.sleep(0.1)
    if p.poll() is None:
        p.kill()
        p.wait(5)


if __name__ == "__main__":
    sys.exit(main())
