"""Processes by pid: shared by `tricklab up` (its Redis, worker and API) and the worker
(whose pool children hold job attempts), and the stack file by which `tricklab up` tells
admin commands where its Redis and API are. Standard library only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def pid_alive(pid: int) -> bool:
    """True while a process with this pid runs; a zombie (exited, not yet reaped by its
    parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we know


# ------------------------------------------------------------------ process tree (Linux)


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc; [] where there is none)."""
    out = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(name))
    return out


def cmdline(pid: int) -> str:
    """The command line of `pid` ('' when unknown)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


# ------------------------------------------------------------ the stack `tricklab up` runs

# `tricklab up` holds an exclusive flock on LOCK_NAME for as long as it runs and keeps
# STACK_NAME (JSON: pid, root, api_url, redis_url, artifact_dir, key_prefix, auth,
# processes) up to date, both under <checkout>/var/. Admin commands (`tricklab keys`,
# `tricklab worker`, the CLI's default URL) read it when nothing else names the stack.
STACK_NAME = "up.json"
LOCK_NAME = "up.lock"


def stack_dir(root: Path) -> Path:
    return root / "var"


def lock_held(path: Path) -> bool:
    """True when some process holds the flock on `path` (False when nobody does, or the
    file is missing)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the pid check alone decides
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock we may have taken
    return False


def read_stack(root: Path) -> dict[str, Any] | None:
    """The stack a live `tricklab up` runs in the checkout `root`, or None (no file, a
    file left by an `up` that is gone, or one that cannot be read)."""
    d = stack_dir(root)
    try:
        data = json.loads((d / STACK_NAME).read_text())
    except (OSError, ValueError):
        return None
    pid = data.get("pid") if isinstance(data, dict) else None
    if not isinstance(pid, int) or not pid_alive(pid) or not lock_held(d / LOCK_NAME):
        return None
    data["stack_file"] = str(d / STACK_NAME)
    return data


def find_stack(start: Path | None = None) -> dict[str, Any] | None:
    """The live stack of the checkout containing `start` (default: the current directory):
    the first of it and its parents with a live var/up.json."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (stack_dir(d) / STACK_NAME).exists():
            found = read_stack(d)
            if found:
                return found
    return None
