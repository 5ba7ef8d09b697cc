"""Structured logs: one JSON object per line from API and workers, and each job's own log.

`setup_logging(component)` puts one handler on the root logger. TRICKLAB_LOG_FORMAT
picks `json` (the default for services) or `text`; TRICKLAB_LOG_LEVEL the level.
A JSON line carries ts, level, logger, msg, component, and job_id / attempt / worker
whenever the code runs inside `log_context(...)` (a worker task around a job, an API
request on /jobs/{id}...): contextvars, so threads and asyncio tasks keep them apart.

`job_log(...)` also copies the records of one job (INFO and above) into a capped
Redis stream, P:job:{id}:log, read back by GET /jobs/{id}/logs. The handler buffers:
one pipelined round trip every FLUSH_LINES lines or FLUSH_S seconds and one at the
end, never a Redis call per line on the training path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

JOB_LOG_MAXLEN = 5000
FLUSH_LINES = 100
FLUSH_S = 2.0

_job_id: ContextVar[str | None] = ContextVar("tricklab_job_id", default=None)
_attempt: ContextVar[int | None] = ContextVar("tricklab_attempt", default=None)
_worker: ContextVar[str | None] = ContextVar("tricklab_worker", default=None)
_component = "tricklab"

# LogRecord attributes; anything else on a record came from `extra=` and is logged too.
_RESERVED = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def iso_ts(created: float) -> str:
    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def context() -> dict[str, Any]:
    """job_id / attempt / worker of the current context, the ones that are set."""
    out: dict[str, Any] = {}
    for key, var in (("job_id", _job_id), ("attempt", _attempt), ("worker", _worker)):
        v = var.get()
        if v is not None:
            out[key] = v
    return out


@contextlib.contextmanager
def log_context(
    *, job_id: str | None = None, attempt: int | None = None, worker: str | None = None
) -> Iterator[None]:
    """Tag every record logged inside with the given job_id / attempt / worker."""
    ctx: list[tuple[ContextVar[Any], Any]] = [
        (_job_id, job_id),
        (_attempt, attempt),
        (_worker, worker),
    ]
    tokens = [(var, var.set(v)) for var, v in ctx if v is not None]
    try:
        yield
    finally:
        for var, tok in reversed(tokens):
            var.reset(tok)


def set_attempt(attempt: int) -> None:
    """Inside a job's log_context: the attempt became known (after the claim)."""
    _attempt.set(attempt)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, component, context, extras, exc."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": iso_ts(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "component": self.component,
        }
        out.update(context())
        for k, v in record.__dict__.items():
            if k not in _RESERVED and k not in out and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For people at a terminal: time, level, logger, [job context], message."""

    def __init__(self, component: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = context()
        if ctx:
            tag = " ".join(f"{k}={v}" for k, v in ctx.items())
            head, sep, tail = line.partition(": ")
            line = f"{head} [{tag}]{sep}{tail}"
        return line


def _level(raw: str | int | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, int):
        return raw
    value = logging.getLevelName(str(raw).strip().upper())
    return value if isinstance(value, int) else default


def setup_logging(
    component: str,
    *,
    level: str | int | None = None,
    fmt: str | None = None,
    stream: Any = None,
    job_records: bool = False,
) -> logging.Handler:
    """Install the one root handler for this process (idempotent); returns it.

    level/fmt default to TRICKLAB_LOG_LEVEL (else INFO) and TRICKLAB_LOG_FORMAT (else
    json). With job_records (workers) the root logger lets INFO through even when the
    console level is higher, so a job's own log keeps its INFO lines.
    """
    global _component
    _component = component
    lvl = _level(os.environ.get("TRICKLAB_LOG_LEVEL") or level, logging.INFO)
    kind = (os.environ.get("TRICKLAB_LOG_FORMAT") or fmt or "json").strip().lower()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tricklab", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._tricklab = True  # type: ignore[attr-defined]
    handler.setFormatter(TextFormatter(component) if kind == "text" else JsonFormatter(component))
    handler.setLevel(lvl)
    root.addHandler(handler)
    root.setLevel(min(lvl, logging.INFO) if job_records else lvl)
    # uvicorn's own loggers print through their own handlers: route them through ours
    # (their levels stay as uvicorn's --log-level set them).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    if component == "api":  # api.observability writes the access log, with route and duration
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    return handler


# ------------------------------------------------------------ per-job log stream
def job_log_key(prefix: str, job_id: str) -> str:
    return f"{prefix}:job:{job_id}:log"


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
    ) -> None:
        super().__init__(level)
        self.r = r
        self.key = job_log_key(prefix, job_id)
        self.job_id = job_id
        self.maxlen = maxlen
        self.flush_lines = flush_lines
        self.flush_s = flush_s
        self.dropped = 0
        self._buf: list[dict[str, str]] = []
        self._last = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        # Only this job's records: another thread of the process may log for nothing/else.
        if _job_id.get() != self.job_id:
            return
        try:
            msg = record.getMessage()
            if record.exc_info and record.levelno >= logging.ERROR:
                msg += "\n" + logging.Formatter().formatException(record.exc_info)
            attempt = _attempt.get()
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

    def flush(self) -> None:
        # self.lock is an RLock, already held when emit() calls this: writes stay in order.
        with self.lock:  # type: ignore[union-attr]
            batch, self._buf = self._buf, []
            self._last = time.monotonic()
            if not batch:
                return
            try:
                with self.r.pipeline(transaction=False) as pipe:
                    for fields in batch:
                        pipe.xadd(self.key, fields, maxlen=self.maxlen, approximate=True)
                    pipe.execute()
            except Exception:  # noqa: BLE001 - a Redis blip loses log lines, not the job
                self.dropped += len(batch)

    def close(self) -> None:
        self.flush()
        super().close()


def flush_job_log() -> None:
    """Write the current job's buffered log lines now: called before its terminal status
    is published, so a reader who sees `succeeded` also sees the whole log."""
    job_id = _job_id.get()
    for h in logging.getLogger().handlers:
        if isinstance(h, JobLogHandler) and h.job_id == job_id:
            h.flush()


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
    entries = r.xrange(job_log_key(prefix, job_id), min=lo, max="+", count=limit)
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
