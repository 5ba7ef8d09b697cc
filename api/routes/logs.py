"""A job's own log lines, as the worker wrote them while running it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import StoreDep, TenantDep
from api.limits import U64_MAX, check_stream_id
from api.routes.jobs import ERRORS, load_job
from tricklab.server.joblog import read_job_log

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_STREAM_ID = f"{U64_MAX}-{U64_MAX}"


class LogLine(BaseModel):
    id: str = Field(description="Stream id of the line; pass the last one as since=")
    ts: str | None = Field(description="When it was logged (UTC, ISO 8601)")
    level: str | None
    logger: str | None
    msg: str
    attempt: int | None = Field(description="The attempt (delivery) that logged it")


class LogsPublic(BaseModel):
    lines: list[LogLine]
    next: str | None = Field(description="Cursor for since= on the next call (null: no lines yet)")


@router.get("/{job_id}/logs", response_model=LogsPublic, responses=ERRORS)
def read_job_logs(
    job_id: str,
    store: StoreDep,
    tenant: TenantDep,
    since: Annotated[
        str | None,
        Query(
            pattern=r"^\d{1,20}-\d{1,20}$",
            description="Only lines after this cursor (the `next` of a previous call).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="At most this many lines.")] = 500,
) -> dict[str, Any]:
    """Read the job's log lines (worker INFO and above, epoch lines), oldest first."""
    if since is not None:
        check_stream_id(since, ["query", "since"])
    load_job(store, job_id, tenant)
    if since == MAX_STREAM_ID:
        return {"lines": [], "next": since}  # nothing can come after it (XRANGE refuses it)
    lines, nxt = read_job_log(store.r, store.p, job_id, since=since, limit=limit)
    return {"lines": lines, "next": nxt}
