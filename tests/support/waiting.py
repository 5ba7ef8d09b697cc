"""Waiting until something is true, never for a fixed time.

`wait_for` is the one polling loop; the job waits read GET /jobs/{id} through it. A
finished job never changes again, so a job wait whose condition the finished job does
not meet fails at once, saying how the job ended, instead of at its timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

TERMINAL = ("succeeded", "failed", "cancelled")


def wait_for(pred, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Call `pred` until it returns something truthy, and return that.

    An exception from `pred` means "not yet" (a server still starting, an element not
    drawn yet, Redis briefly down), except AssertionError: that is how a condition says
    it can no longer come true, and it fails the wait at once.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: Exception | None = None
    while True:
        try:
            last = pred()
            if last:
                return last
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what} (last value: {last!r}, "
        f"last error: {last_exc!r})"
    )


def get_job(c: httpx.Client, job_id: str) -> dict[str, Any]:
    r = c.get(f"/jobs/{job_id}")
    r.raise_for_status()  # a 503 while Redis is down: wait_job retries it
    return r.json()


def wait_job(
    c: httpx.Client,
    job_id: str,
    until: Callable[[dict[str, Any]], Any],
    timeout: float = 60.0,
    what: str = "condition",
) -> dict[str, Any]:
    """The job's record once `until(record)` is true."""

    def check() -> dict[str, Any] | None:
        j = get_job(c, job_id)
        if until(j):
            return j
        assert j["status"] not in TERMINAL, (
            f"job {job_id} ended {j['status']} before {what} (error: {j.get('error')})"
        )
        return None

    return wait_for(check, timeout, 0.05, what=f"job {job_id}: {what}")


def wait_done(c: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The job once it has finished: succeeded, failed or cancelled."""
    return wait_job(c, job_id, lambda j: j["status"] in TERMINAL, timeout, "to finish")


def wait_status(c: httpx.Client, job_id: str, *statuses: str, timeout: float = 60.0) -> dict:
    return wait_job(c, job_id, lambda j: j["status"] in statuses, timeout, f"status {statuses}")


def wait_running(c: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The job running and past its first update (it has reported progress)."""
    return wait_job(
        c,
        job_id,
        lambda j: j["status"] == "running" and (j.get("progress") or {}).get("step", 0) > 0,
        timeout,
        "running with progress",
    )


def wait_epoch(c: httpx.Client, job_id: str, epoch: int, timeout: float = 60.0) -> dict:
    """The job running with its progress at `epoch` or later."""
    return wait_job(
        c,
        job_id,
        lambda j: j["status"] == "running" and (j.get("progress") or {}).get("epoch", 0) >= epoch,
        timeout,
        f"running at epoch {epoch}",
    )
