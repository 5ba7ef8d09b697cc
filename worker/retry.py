"""Retry a Redis write through a short outage (a restart, a failover, a blip).

The writes that end a job (the claim, the result, the terminal status, the job's log)
must not be lost to a Redis that is away for seconds: they are retried with capped
exponential backoff for at most `budget_s` (settings.finish_retry_s). Only connection
errors and timeouts are retried (redis.BusyLoadingError, a Redis still loading its AOF,
is a ConnectionError); a script's own error is an answer and is raised at once.

Every write retried here must be safe to repeat: the job-status scripts are fenced on
the attempt, so a retry of a write that did land (its reply was lost) is answered
"fenced" or "not claimable", never applied twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE = (redis.ConnectionError, redis.TimeoutError)
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 2.0


def with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    budget_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """fn(), retried on Redis connection errors and timeouts for up to budget_s seconds."""
    deadline = time.monotonic() + budget_s
    delay = FIRST_DELAY_S
    tries = 0
    while True:
        try:
            result = fn()
        except RETRYABLE as e:
            tries += 1
            left = deadline - time.monotonic()
            if left <= 0:
                log.error("%s: Redis still unreachable after %.0fs; giving up", what, budget_s)
                raise
            if tries == 1:
                log.warning("%s: Redis unreachable (%s); retrying for %.0fs", what, e, budget_s)
            sleep(min(delay, left))
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if tries:
            log.info("%s: written after %d retries", what, tries)
        return result
