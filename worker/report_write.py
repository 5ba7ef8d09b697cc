"""One write of a job's report to Redis: its series points, events and fenced heartbeat.

The reporter (worker/reporting.py) buffers what the training loop reports and hands it
here a batch at a time. The batch goes out in one MULTI/EXEC, so a reader's snapshot
(tricklab.server.series.read_series) sees all of a step's points or none, and the
heartbeat that renews the lease answers in the same round trip (a Beat: go on, cancel,
fenced). The values the loop hands over may be numpy or torch scalars: `jsonable` and
`number` make them JSON-safe or plain floats (the runner's final record uses `jsonable`
too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis

from tricklab.server.series import SeriesWriter
from tricklab.server.store import Store

Point = tuple[int, dict[str, Any]]  # (step, series name -> value)


class PartlyApplied(redis.RedisError):
    """EXEC ran, but some of its commands failed (the others applied): not a ResponseError,
    which here means that Redis refused the whole transaction (EXECABORT)."""

    def __init__(self, error: Exception, answer: Any) -> None:
        super().__init__(f"part of the transaction failed: {error}")
        self.answer = answer  # the heartbeat's, when it ran


@dataclass(frozen=True)
class Heartbeat:
    """What the fenced heartbeat of a write carries (tricklab.server.store.Store.heartbeat)."""

    attempt: int
    lease_s: float
    progress: dict[str, Any] | None
    metrics: dict[str, Any] | None
    best: dict[str, Any] | None


def write_report(
    store: Store,
    raw: Any,  # the bytes client the series writer packs its records for
    series: SeriesWriter,
    job_id: str,
    points: list[Point],  # in step order
    events: list[tuple[str, dict]],
    beat: Heartbeat,
) -> Any:
    """Write one batch in one MULTI/EXEC; the heartbeat's answer. PartlyApplied when some
    commands failed; a refused MULTI raises redis-py's own error."""
    with raw.pipeline(transaction=True) as pipe:
        by_name: dict[str, tuple[list[int], list[float]]] = {}
        for at, values in points:
            for name, value in values.items():
                v = number(value)
                if v is not None:
                    steps, vals = by_name.setdefault(name, ([], []))
                    steps.append(at)
                    vals.append(v)
        for name, (steps, vals) in by_name.items():
            series.add(pipe, name, steps, vals)
        for kind, data in events:
            store.emit(job_id, kind, data, pipe=pipe)
        store.heartbeat(
            job_id,
            beat.attempt,
            lease_s=beat.lease_s,
            progress=beat.progress,
            metrics=beat.metrics,
            best=beat.best,
            pipe=pipe,
        )
        replies = pipe.execute(raise_on_error=False)
    failed = [r for r in replies if isinstance(r, Exception)]
    if failed:
        answer = replies[-1]
        raise PartlyApplied(failed[0], None if isinstance(answer, Exception) else answer)
    return replies[-1]


def jsonable(v: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no NaN), tensors/numpy -> numbers."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str | int):
        return v
    if hasattr(v, "item"):  # numpy / torch scalars
        try:
            v = v.item()
        except (ValueError, RuntimeError):
            return str(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, int | str | bool):
        return v
    return str(v)


def number(v: Any) -> float | None:
    """A metric's value as a float (numpy/torch scalars too); None for anything else."""
    if isinstance(v, bool):
        return None
    if hasattr(v, "item"):
        v = v.item()
    return float(v) if isinstance(v, int | float) else None
