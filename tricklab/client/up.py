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
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from tricklab.client.embedded_redis import Embedded, port_free
from tricklab.client.supervisor import (  # noqa: F401 - backoff_delay, describe_exit re-exported
    Supervised,
    Supervisor,
    backoff_delay,
    become_subreaper,
    describe_exit,
    say,
    stop,
)
from tricklab.procs import LOCK_NAME, STACK_NAME, stack_dir
from tricklab.settings import Settings, is_loopback

READY_WARN_S = 120.0  # say so when the stack is not ready after this long (and keep waiting)
EXIT_BUSY = 3  # another `tricklab up` runs this checkout


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
    p.add_argument(
        "--verbose",
        action="store_true",
        default=os.environ.get("TRICKLAB_UP_VERBOSE", "") not in ("", "0"),
        help="print the worker's and the API's output here (default: var/log/*.log; "
        "also TRICKLAB_UP_VERBOSE=1)",
    )
    return p.parse_args(argv)


LOGS = ("api", "worker", "redis")


def log_paths(root: Path, verbose: bool) -> dict[str, Path | None]:
    """var/log/{api,worker}.log, where a quiet `up` sends their output (None: the console).

    The embedded Redis writes var/redis/redis.log itself; var/log/redis.log links to it,
    so every log of the stack is in one folder."""
    if verbose:
        return dict.fromkeys(LOGS)
    logs = root / "var" / "log"
    logs.mkdir(parents=True, exist_ok=True)
    link = logs / "redis.log"
    if not link.exists() and not link.is_symlink():
        with contextlib.suppress(OSError):
            link.symlink_to(Path("..") / "redis" / "redis.log")
    return {name: logs / f"{name}.log" for name in LOGS}


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
    subreaper = become_subreaper()

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
    logs = log_paths(root, args.verbose)
    services = []
    if not args.no_worker:
        cmd = [sys.executable, "-m", "worker.launch", *args.worker_args.split()]
        services.append(Supervised("worker", cmd, env, 60, log=logs["worker"]))
    api_cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", args.host]
    api_cmd += ["--port", str(args.port), "--log-level", "info" if logs["api"] else "warning"]
    services.append(Supervised("api", api_cmd, env, 10, log=logs["api"]))

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
    started = ", ".join(f"{s.name} (pid {s.proc.pid if s.proc else '?'})" for s in services)
    print(f"  Started:  {started}", flush=True)
    if logs["api"]:
        print(
            f"  Logs:     {logs['api'].parent}/{{{','.join(LOGS)}}}.log (--verbose prints them here)"
        )
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
                path = ready_url.removeprefix(base)
                print(f"  Ready:    {path} 200 after {now - t0:.1f} s", flush=True)
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
    """The few lines a person needs, the URLs and the export line last (below any logs)."""
    lines = [
        f"  Health:   {base}/healthz (live), {base}/readyz (ready: Redis and a worker answer)",
        f"  Data:     artifacts in {env['ARTIFACT_DIR']}",
        "  Other shells in this checkout find this stack through var/up.json; elsewhere:",
        f"    export REDIS_URL={env['REDIS_URL']} ARTIFACT_DIR={env['ARTIFACT_DIR']}",
    ]
    if args.no_worker:
        lines.append("  No worker (--no-worker): /readyz answers 503 until one runs.")
    lines += [
        "  Ctrl-C stops everything.",
        "",
        *auth_banner(auth, args.host),
        "",
        f"  Dashboard: {base}/",
        f"  API docs:  {base}/docs",
        f"  export TRICKLAB_URL={base}",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
