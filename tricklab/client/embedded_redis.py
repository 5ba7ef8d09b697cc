"""The Redis `tricklab up` runs when none is configured: ./var/redis, AOF, a free port.

One left running by an earlier `up` that died is adopted (its pid file names a live
redis-server that answers PING) and stopped at the end; a busy port makes it pick a free
one. Only ever stops the server it started or adopted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tricklab.procs import cmdline, pid_alive

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


# ------------------------------------------------------------------------ auth banner


class Embedded:
    """A private redis-server under var/redis; one left by an earlier `up` that died is
    adopted. Only what this `up` started or adopted is ever stopped."""

    def __init__(self, root: Path, port: int) -> None:
        self.dir = root / "var" / "redis"
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.adopted_pid: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else self.adopted_pid

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        pidfile, portfile = self.dir / "redis.pid", self.dir / "port"
        if pidfile.exists() and portfile.exists():
            try:
                pid, port = int(pidfile.read_text()), int(portfile.read_text())
            except ValueError:
                pid, port = 0, 0
            # Only a redis-server (the pid may have been reused) that answers on its port.
            cmd = cmdline(pid) if pid else ""
            if pid and pid_alive(pid) and ping(port) and (not cmd or "redis-server" in cmd):
                self.port, self.adopted_pid = port, pid
                print(f"  adopting the embedded Redis an earlier run left behind (pid {pid})")
                return
            pidfile.unlink(missing_ok=True)  # stale
        exe = find_redis_server()
        if exe is None:
            sys.exit(INSTALL_REDIS)
        if not port_free("127.0.0.1", self.port):
            self.port = free_port()
        # Its own session: a terminal Ctrl-C reaches up.py, which stops Redis last.
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
        pid = self.pid
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
        else:
            deadline = time.monotonic() + 15
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


# ------------------------------------------------------------------------ supervision
