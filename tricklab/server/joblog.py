"""Each job's own log: the records of one job (INFO and above) copied into a capped Redis
stream, read back by GET /jobs/{id}/logs.

The handler buffers: one pipelined round trip every FLUSH_LINES lines or FLUSH_S seconds
and one at the end, never a Redis call per line on the training path. While Redis is
away the lines stay in memory (at most `maxlen`, the oldest dropped first) and go out
with the first flush that reaches it: a write that fails backs off (RETRY_S) instead of
trying again at every line. The flushes that end a job (flush_job_log before the
terminal status, close) may wait for Redis, up to `retry_s`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis

from tricklab.server.keyspace import Keyspace
from tricklab.server.logs import context, iso_ts, log_context

JOB_LOG_MAXLEN = 5000
FLUSH_LINES = 100
FLUSH_S = 2.0
RETRY_S = 5.0  # after a failed write, lines wait this long before the next try


class JobLogHandler(logging.Handler):
    """Buffers the records of one job (any thread) and appends them to its Redis stream."""

    def __init__(
        self,
        r: Any,
        prefix: str,
        job_id: str,
        *,
        level: int = logging.INFO,
        maxlen: int = JOB_LOG_MAXLEN,
        flush_lines: int = FLUSH_LINES,
        flush_s: float = FLUSH_S,
        close_retry_s: float = 0.0,
    ) -> None:
        super().__init__(level)
        self.r = r
        self.key = Keyspace(prefix).job_log(job_id)
        self.job_id = job_id
        self.maxlen = maxlen
        self.flush_lines = flush_lines
        self.flush_s = flush_s
        self.close_retry_s = close_retry_s
        self.dropped = 0
        self._buf: list[dict[str, str]] = []
        self._last = time.monotonic()
        self._retry_at = 0.0  # no write before this after a failed one (monotonic)

    def emit(self, record: logging.LogRecord) -> None:
        # Only this job's records: another thread of the process may log for nothing/else.
        if context().get("job_id") != self.job_id:
            return
        try:
            msg = record.getMessage()
            if record.exc_info and record.levelno >= logging.ERROR:
                msg += "\n" + logging.Formatter().formatException(record.exc_info)
            attempt = context().get("attempt")
            self._buf.append(
                {
                    "ts": iso_ts(record.created),
                    "level": record.levelname,
                    "logger": record.name,
                    "msg": msg[:8000],
                    "attempt": "" if attempt is None else str(attempt),
                }
            )
            due = len(self._buf) >= self.flush_lines or (
                time.monotonic() - self._last >= self.flush_s
            )
        except Exception:  # noqa: BLE001 - logging must never break the job
            self.handleError(record)
            return
        if due:
            self.flush()

    def flush(self, retry_s: float = 0.0) -> None:
        """Write the buffered lines; on a Redis outage keep them, retrying for retry_s."""
        # self.lock is an RLock, already held when emit() calls this: writes stay in order.
        with self.lock:  # type: ignore[union-attr]
            self._last = time.monotonic()
            if not self._buf or (not retry_s and self._last < self._retry_at):
                return
            deadline = self._last + retry_s
            delay = 0.1
            while True:
                try:
                    self._write(self._buf)
                except (redis.ConnectionError, redis.TimeoutError):
                    self._retry_at = time.monotonic() + RETRY_S
                    self._cap()
                    if time.monotonic() + delay > deadline:
                        return  # kept: the next flush tries again
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                except Exception:  # noqa: BLE001 - not an outage: a bad batch is dropped
                    self.dropped += len(self._buf)
                self._buf = []
                self._retry_at = 0.0
                return

    def _write(self, batch: list[dict[str, str]]) -> None:
        # MULTI/EXEC: a batch lands whole or not at all, so a retry after a failed write
        # repeats no half batch (only an EXEC whose answer was lost is written twice)
        with self.r.pipeline(transaction=True) as pipe:
            for fields in batch:
                pipe.xadd(self.key, fields, maxlen=self.maxlen, approximate=True)
            pipe.execute()

    def _cap(self) -> None:
        """While Redis is away: keep the newest `maxlen` lines (the stream keeps no more)."""
        extra = len(self._buf) - self.maxlen
        if extra > 0:
            del self._buf[:extra]
            self.dropped += extra

    def close(self) -> None:
        self.flush(retry_s=self.close_retry_s)
        super().close()


def flush_job_log(retry_s: float = 0.0) -> None:
    """Write the current job's buffered log lines now (through a Redis outage of up to
    retry_s): called before its terminal status is published, so a reader who sees
    `succeeded` also sees the whole log."""
    job_id = context().get("job_id")
    for h in logging.getLogger().handlers:
        if isinstance(h, JobLogHandler) and h.job_id == job_id:
            h.flush(retry_s=retry_s)


@contextlib.contextmanager
def job_log(
    r: Any, prefix: str, job_id: str, *, worker: str | None = None, **kw: Any
) -> Iterator[JobLogHandler]:
    """Around one delivery of a job: context tags and the job's Redis log stream.

    The attempt is not known before the claim; `set_attempt` adds it.
    """
    handler = JobLogHandler(r, prefix, job_id, **kw)
    root = logging.getLogger()
    with log_context(job_id=job_id, worker=worker):
        root.addHandler(handler)
        try:
            yield handler
        finally:
            root.removeHandler(handler)
            handler.close()


def read_job_log(
    r: Any, prefix: str, job_id: str, *, since: str | None = None, limit: int = 500
) -> tuple[list[dict[str, Any]], str | None]:
    """Lines after cursor `since` (a stream id), oldest first, and the cursor to pass next."""
    lo = f"({since}" if since else "-"
    entries = r.xrange(Keyspace(prefix).job_log(job_id), min=lo, max="+", count=limit)
    lines = []
    for eid, f in entries:
        f = {_s(k): _s(v) for k, v in f.items()}
        lines.append(
            {
                "id": eid if isinstance(eid, str) else eid.decode(),
                "ts": f.get("ts"),
                "level": f.get("level"),
                "logger": f.get("logger"),
                "msg": f.get("msg", ""),
                "attempt": int(f["attempt"]) if f.get("attempt") else None,
            }
        )
    return lines, (lines[-1]["id"] if lines else since)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else v
