"""Processes by pid: shared by `tricklab up` (its Redis, worker and API) and the worker
(whose pool children hold job attempts). Standard library only."""

from __future__ import annotations

import os


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
