"""What the API, the workers and the clients agree on: job statuses, queues, the task name.

Pure Python, no Redis and no HTTP: both tricklab.server and tricklab.client import it.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A job's status. Moves only forward, queued -> running -> one of the terminal three,
    except that a running job whose worker died or was preempted goes back to queued."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


STATUSES: tuple[JobStatus, ...] = tuple(JobStatus)
TERMINAL: tuple[JobStatus, ...] = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
ACTIVE: tuple[JobStatus, ...] = (JobStatus.QUEUED, JobStatus.RUNNING)

# The Celery task every training job runs as (worker/tasks.py registers it; the API, the
# reconciler and the follow-ups send it by name, so the API never imports the worker).
TRAIN_TASK = "tricklab.train"
QUEUES = ("cpu", "gpu")
