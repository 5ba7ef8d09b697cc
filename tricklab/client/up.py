"""`make up` / `tricklab up`: Redis (embedded unless REDIS_URL is set), one worker and the API.

One `tricklab up` per checkout: it holds a lock (var/up.lock) and writes var/up.json
(its pid, the API and Redis URLs, the pids it started), which `tricklab keys`,
`tricklab worker` and the CLI read when nothing else names the stack. A second
`tricklab up` in the same checkout refuses, naming the first one's pid and URLs, and
stops nothing; a file left by an `up` that is gone is taken over.

It supervises what it started: a worker or API that exits (kill -9, OOM killer, a
stray SIGTERM) is restarted after a backoff (doubling per exit in a row, capped; reset
once it stayed up a while), the others keep running, and each restart is logged with
the exit code or signal. Processes a dead worker leaves behind (its pool child, on
Linux) are stopped with SIGTERM, so their job checkpoints and goes back to the queue
for the new worker. Ctrl-C or SIGTERM stops everything it started, in order: API,
worker (running jobs checkpoint and go back to the queue), then Redis.

Embedded Redis runs from ./var/redis with AOF persistence, so jobs survive a restart;
one left running by an earlier `up` that died is adopted (and stopped at the end); a
busy port makes it pick a free one. Startup waits on /readyz (Redis and a worker
reachable), not on /healthz (the process answers).

No torch here: this process only starts the others.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from tricklab.procs import LOCK_NAME, STACK_NAME, children_of, cmdline, pid_alive, stack_dir
from tricklab.settings import Settings, is_loopback

INSTALL_REDIS = """\
tricklab up needs a redis-server binary (Redis >= 6) or REDIS_URL pointing at a Redis.
Install one of:
  Debian/Ubuntu:  sudo apt-get install redis-server
  macOS:          brew install redis
  conda:          conda install -c conda-forge redis-server
or run one in Docker:  docker run -p 6379:6379 redis:7 --appendonly yes
                       REDIS_URL=redis://127.0.0.1:6379/0 make up"""

READY_WARN_S = 120.0  # say so when the stack is not ready after this long (and keep waiting)
ORPHAN_GRACE_S = 60.0  # SIGTERM -> SIGKILL for what a dead worker left behind
EXIT_BUSY = 3  # another `tricklab up` runs this checkout


def say(msg: str) -> None:
    print(f"tricklab up: {msg}", file=sys.stderr, flush=True)


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


def auth_required(auth: str, host: str) -> bool:
    """Whether the API this `up` starts asks for keys: api/auth.py's auth_required."""
    if auth == "required":
        return True
    if auth == "off":
        return False
    return not is_loopback(host)


def auth_banner(auth: str, host: str) -> list[str]:
    if auth_required(auth, host):
        why = "TRICKLAB_AUTH=required" if auth == "required" else f"HOST={host} is not loopback"
        return [
            f"  Auth:      API keys required ({why}).",
            "             Create one: tricklab keys create NAME   (it finds this stack's Redis)",
            "             and send it as 'Authorization: Bearer <key>' or TRICKLAB_API_KEY.",
        ]
    lines = ["  !! NO AUTHENTICATION: anyone who can reach this port can submit jobs. !!"]
    if not is_loopback(host):
        lines.append(f"  !! HOST={host} is not loopback: put a proxy with auth in front.     !!")
    else:
        lines.append("  !! Listening on loopback only; keep it that way without a proxy.      !!")
    if auth == "off":
        lines.append("  !! (TRICKLAB_AUTH=off; TRICKLAB_AUTH=required turns keys on.)          !!")
    return lines


# ---------------------------------------------------------------- one up per checkout


class StackBusy(Exception):
    """Another live `tricklab up` holds this checkout's lock."""


class StackLock:
    """The flock on var/up.lock, held for as long as this `up` runs, and var/up.json."""

    def __init__(self, root: Path) -> None:
        self.dir = stack_dir(root)
        self.lock_path = self.dir / LOCK_NAME
        self.path = self.dir / STACK_NAME
        self.fd: int | None = None
        self.data: dict[str, Any] = {}

    def acquire(self) -> dict[str, Any] | None:
        """Take the lock; returns what a dead earlier `up` left in up.json (None if nothing).
        Raises StackBusy(message) when a live `up` holds it."""
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(5):  # a reader's brief shared lock (procs.lock_held) is not an owner
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if attempt == 4:
                    os.close(fd)
                    raise StackBusy(self._busy_message()) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        try:
            old = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return old if isinstance(old, dict) else None

    def _busy_message(self) -> str:
        try:
            info = json.loads(self.path.read_text())
        except (OSError, ValueError):
            info = {}
        pid = info.get("pid")
        if pid is None:
            with contextlib.suppress(OSError, ValueError):
                pid = int(self.lock_path.read_text().strip())
        root = self.dir.parent
        if not info.get("api_url"):
            return (
                f"another `tricklab up` (pid {pid}) is starting in this checkout ({root}); "
                f"stop it first (kill -TERM {pid}) or wait for it"
            )
        return (
            f"another `tricklab up` (pid {pid}) already runs this checkout ({root}): "
            f"API {info['api_url']}, Redis {info.get('redis_url')}.\n"
            f"  Use it:  export REDIS_URL={info.get('redis_url')} TRICKLAB_URL={info['api_url']}\n"
            f"  or stop it first (Ctrl-C in its terminal, or kill -TERM {pid}). "
            "Nothing was started or stopped."
        )

    def write(self, **data: Any) -> None:
        self.data.update(data)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)  # drops the flock
        self.fd = None


# ----------------------------------------------------------------------------- Redis


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


def _prctl() -> Any:
    """libc's prctl on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
_PRCTL = _prctl()


def _term_with_parent() -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)  # `up` killed -9: its children stop too


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Seconds before restart number `failures` of a run of exits in a row (1, 2, ...)."""
    return min(cap, base * 2 ** max(0, failures - 1))


def describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"was killed by {name} (signal {-rc})"
    return f"exited with code {rc}"


@dataclass
class Supervised:
    name: str
    cmd: list[str]
    env: dict[str, str]
    grace_s: float  # SIGTERM -> SIGKILL when stopping
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row, each before up_stable_s
    restarts: int = 0
    restart_at: float | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, start_new_session=True, preexec_fn=_term_with_parent
        )
        self.started_at = time.monotonic()
        self.restart_at = None


@dataclass
class Supervisor:
    services: list[Supervised]
    base_s: float
    cap_s: float
    stable_s: float
    keep: set[int] = field(default_factory=set)  # our children that are not orphans (Redis)
    orphans: dict[int, float] = field(default_factory=dict)  # pid -> when SIGTERM was sent
    on_change: Any = None  # called after a (re)start: rewrite the stack file
    # Stop and reap children we did not start. Only in `tricklab up` itself, a subreaper
    # whose every other child is an orphan (never in a process with children of its own).
    reap: bool = False

    def pids(self) -> dict[str, int | None]:
        return {s.name: s.proc.pid if s.proc else None for s in self.services}

    def tick(self, now: float) -> None:
        for s in self.services:
            if s.proc is not None and s.proc.poll() is not None:
                up_for = now - s.started_at
                s.failures = 1 if up_for >= self.stable_s else s.failures + 1
                delay = backoff_delay(s.failures, self.base_s, self.cap_s)
                say(
                    f"{s.name} (pid {s.proc.pid}) {describe_exit(s.proc.returncode)} after "
                    f"{up_for:.1f} s; restarting it in {delay:g} s "
                    f"(restart {s.restarts + 1}, exit {s.failures} in a row); the rest keeps running"
                )
                s.proc, s.restart_at = None, now + delay
            if s.proc is None and s.restart_at is not None and now >= s.restart_at:
                s.start()
                s.restarts += 1
                say(f"{s.name} restarted (pid {s.proc.pid if s.proc else '?'})")
                if self.on_change:
                    self.on_change()
        self.reap_orphans(now)

    def reap_orphans(self, now: float) -> None:
        """What a dead worker left behind is re-parented to us (we are a subreaper on
        Linux): SIGTERM it (a pool child checkpoints its job and re-queues it), SIGKILL it
        after ORPHAN_GRACE_S, reap it."""
        if not self.reap:
            return
        ours = {s.proc.pid for s in self.services if s.proc} | self.keep
        for pid in children_of(os.getpid()):
            if pid in ours or pid in self.orphans:
                continue
            say(f"stopping pid {pid} that a dead process left behind: {cmdline(pid)[:120]}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            self.orphans[pid] = now
        for pid, sent in list(self.orphans.items()):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                del self.orphans[pid]
            elif now - sent > ORPHAN_GRACE_S:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def stop_all(self, stopping: dict) -> None:
        """API first (no new jobs while the worker drains), then the worker, then orphans."""
        for s in reversed(self.services):
            s.restart_at = None
            if s.proc is not None:
                stop(s.proc, s.grace_s, stopping)
        deadline = time.monotonic() + ORPHAN_GRACE_S
        while True:
            self.reap_orphans(time.monotonic())
            if not self.orphans or time.monotonic() > deadline or stopping["n"] > 1:
                break
            time.sleep(0.1)
        for pid in self.orphans:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


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


def probe(url: str) -> tuple[bool, str]:
    """(ready, what it said) for /readyz or /healthz."""
    import httpx

    try:
        r = httpx.get(url, timeout=2)
    except httpx.HTTPError as e:
        return False, f"{type(e).__name__}: {e}"
    if r.status_code == 200:
        return True, r.text
    try:
        return False, f"{r.status_code} {r.json().get('message', r.text)}"
    except ValueError:
        return False, f"{r.status_code} {r.text[:200]}"


# ------------------------------------------------------------------------------ main


def parse(argv: list[str] | None, settings: Settings) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tricklab up", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=settings.host, help="API bind address (default $HOST)")
    p.add_argument("--port", type=int, default=settings.port, help="API port (default $PORT)")
    p.add_argument("--redis-port", type=int, default=6380, help="embedded Redis port")
    p.add_argument("--no-worker", action="store_true", help="start only Redis and the API")
    p.add_argument("--worker-args", default="", help="extra args for `tricklab worker`")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    args = parse(argv, settings)
    root = Path.cwd()
    env = dict(os.environ)
    env.setdefault("ARTIFACT_DIR", str(root / "var" / "artifacts"))
    env["PYTHONUNBUFFERED"] = "1"
    env["HOST"], env["PORT"] = args.host, str(args.port)  # the API's auth rule reads HOST

    lock = StackLock(root)
    try:
        old = lock.acquire()
    except StackBusy as e:
        say(str(e))
        return EXIT_BUSY
    if old and old.get("pid") != os.getpid():
        say(f"taking over {lock.path}: the `tricklab up` it names (pid {old.get('pid')}) is gone")
    try:
        return run(args, settings, root, env, lock)
    finally:
        lock.release()


def run(
    args: argparse.Namespace, settings: Settings, root: Path, env: dict[str, str], lock: StackLock
) -> int:
    stopping = {"n": 0}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping["n"] += 1

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    # What a dead worker leaves behind becomes our child, not init's, and is stopped.
    subreaper = _PRCTL is not None and _PRCTL(PR_SET_CHILD_SUBREAPER, 1) == 0

    print("tricklab up", flush=True)
    redis: Embedded | None = None
    if "redis_url" in settings.model_fields_set:
        env["REDIS_URL"] = settings.redis_url
        print(f"  Redis:    {settings.redis_url} (from REDIS_URL)")
    else:
        redis = Embedded(root, args.redis_port)
        redis.start()
        env["REDIS_URL"] = redis.url
        print(f"  Redis:    {redis.url} (embedded, AOF in {redis.dir})")

    if not port_free(args.host, args.port):
        if redis:
            redis.stop()  # ours: started or adopted above, never another up's (the lock)
        say(f"port {args.port} on {args.host} is busy; run with PORT=<another port>")
        return 1

    client_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    if ":" in client_host and not client_host.startswith("["):
        client_host = f"[{client_host}]"
    base = f"http://{client_host}:{args.port}"
    services = []
    if not args.no_worker:
        cmd = [sys.executable, "-m", "worker.launch", *args.worker_args.split()]
        services.append(Supervised("worker", cmd, env, 60))
    api_cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", args.host]
    api_cmd += ["--port", str(args.port), "--log-level", "warning"]
    services.append(Supervised("api", api_cmd, env, 10))

    sup = Supervisor(
        services,
        settings.up_restart_backoff_s,
        settings.up_restart_backoff_max_s,
        settings.up_stable_s,
        reap=subreaper,
    )
    if redis and redis.proc:
        sup.keep.add(redis.proc.pid)
    required = auth_required(settings.auth, args.host)

    def write_stack() -> None:
        lock.write(
            pid=os.getpid(),
            root=str(root),
            api_url=base,
            redis_url=env["REDIS_URL"],
            redis_embedded=redis is not None,
            redis_pid=redis.pid if redis else None,
            artifact_dir=env["ARTIFACT_DIR"],
            key_prefix=settings.key_prefix,
            auth="required" if required else "off",
            processes=sup.pids(),
            restarts={s.name: s.restarts for s in services},
        )

    sup.on_change = write_stack
    for s in services:
        s.start()
        say(f"started {s.name} (pid {s.proc.pid if s.proc else '?'})")
    write_stack()

    # Ready = Redis and a worker reachable (/readyz); without a worker, the API answering.
    ready_url = f"{base}/healthz" if args.no_worker else f"{base}/readyz"
    t0 = time.monotonic()
    announced = warned = False
    next_probe = 0.0
    while not stopping["n"]:
        now = time.monotonic()
        sup.tick(now)
        if not announced and now >= next_probe:
            ok, said = probe(ready_url)
            next_probe = now + 0.5
            if ok:
                announced = True
                banner(args, base, env, settings.auth)
            elif not warned and now - t0 > READY_WARN_S:
                warned = True
                say(f"not ready after {READY_WARN_S:g} s ({ready_url}: {said}); still waiting")
        time.sleep(0.2)

    print("\ntricklab up: stopping (API, worker, then Redis)...", flush=True)
    sup.stop_all(stopping)
    if redis:
        redis.stop()
    print("tricklab up: stopped", flush=True)
    return 0


def banner(args: argparse.Namespace, base: str, env: dict[str, str], auth: str) -> None:
    lines = [
        f"  API:       {base}",
        f"  API docs:  {base}/docs",
        f"  Dashboard: {base}/",
        f"  Artifacts: {env['ARTIFACT_DIR']}",
        f"  Health:    {base}/healthz (live: the API answers), "
        f"{base}/readyz (ready: Redis and a worker answer)",
        "",
        *auth_banner(auth, args.host),
        "",
        "  From another shell (`tricklab keys`, `tricklab worker` and the CLI run in this",
        "  checkout find this stack by themselves, through var/up.json):",
        f"    export REDIS_URL={env['REDIS_URL']}",
        f"    export TRICKLAB_URL={base}",
        f"    export ARTIFACT_DIR={env['ARTIFACT_DIR']}",
    ]
    if args.no_worker:
        lines.append("  No worker (--no-worker): /readyz answers 503 until one runs.")
    lines.append("\n  Ctrl-C stops everything.")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
