"""The supervisor of `tricklab up`: restart what exits, with backoff, and stop in order.

A supervised process that exits is restarted after a delay that doubles per exit in a
row (capped) and resets once it stayed up `stable_s`; the others keep running. On Linux
children get SIGTERM when `up` itself dies (PR_SET_PDEATHSIG), and processes a dead
child leaves behind are stopped (SIGTERM, then SIGKILL after ORPHAN_GRACE_S).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tricklab.procs import children_of, cmdline

ORPHAN_GRACE_S = 60.0  # SIGTERM -> SIGKILL for what a dead worker left behind


def say(msg: str) -> None:
    print(f"tricklab up: {msg}", file=sys.stderr, flush=True)


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


def become_subreaper() -> bool:
    """What a dead child leaves behind becomes our child, not init's (Linux); False elsewhere."""
    return _PRCTL is not None and _PRCTL(PR_SET_CHILD_SUBREAPER, 1) == 0


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
    # Where its stdout and stderr go (appended; var/log/NAME.log in a quiet `up`); None:
    # the console, as `up --verbose` has it.
    log: Path | None = None

    def start(self) -> None:
        out = None
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log, "ab")  # noqa: SIM115 - the child keeps its own copy
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"==== tricklab up: starting {self.name} at {stamp}\n".encode())
            out.flush()
        try:
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                start_new_session=True,
                preexec_fn=_term_with_parent,
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
            )
        finally:
            if out is not None:
                out.close()
        self.started_at = time.monotonic()
        self.restart_at = None

    def last_lines(self, n: int = 5) -> list[str]:
        """The end of its log, so an exit says why without opening the file."""
        if self.log is None:
            return []
        try:
            with open(self.log, "rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
                tail = fh.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        return [line[:200] for line in tail[-n:] if line.strip()]


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
                    + "".join(f"\n    | {line}" for line in s.last_lines())
                    + (f"\n    (all of it: {s.log})" if s.log else "")
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
