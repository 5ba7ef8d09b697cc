"""What the job scripts (lua/job_*.lua) answer, by name, and the errors Store raises.

Each Lua file's header names the same outcomes; keep the two in step.
"""

from __future__ import annotations

from enum import IntEnum


class Beat(IntEnum):
    """What a heartbeat (lua/job_heartbeat.lua) tells the worker."""

    FENCED = -1  # another attempt owns the job: stop writing, drop the run
    GO_ON = 1
    CANCEL = 2  # a cancel was requested: stop at this log point


class Requeued(IntEnum):
    """What requeue (lua/job_requeue.lua) did."""

    NOT_APPLICABLE = 0  # not running, another attempt, or the lease has not expired
    REQUEUED = 1  # back to queued: the caller re-publishes the task
    CANCELLED = 2  # a cancel was pending, so it ended cancelled instead


CREATED, OVER_QUOTA = 1, 0  # lua/job_create.lua
CLAIM_REFUSED, CLAIM_MISSING = 0, -1  # lua/job_claim.lua (else: the attempt number)
FINISHED = 1  # lua/job_finish.lua (0: fenced)


class JobNotFound(KeyError):
    pass


class QuotaExceeded(Exception):
    """create_job refused: the tenant already has `active` >= max_active queued + running jobs."""

    def __init__(self, active: int, max_active: int) -> None:
        super().__init__(f"{active} active jobs, limit {max_active}")
        self.active = active
        self.max_active = max_active
