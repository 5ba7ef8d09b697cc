"""Structured logs: one JSON object per line from API and workers, and each job's own log.

`setup_logging(component)` puts one handler on the root logger. TRICKLAB_LOG_FORMAT
picks `json` (the default for services) or `text`; TRICKLAB_LOG_LEVEL the level.
A JSON line carries ts, level, logger, msg, component, and job_id / attempt / worker
whenever the code runs inside `log_context(...)` (a worker task around a job, an API
request on /jobs/{id}...): contextvars, so threads and asyncio tasks keep them apart.

Each job's own log (a Redis stream) is tricklab.server.joblog.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

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
