"""Jobs: create, list, read, cancel, download the trained model."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Response
from fastapi.responses import FileResponse

from api.auth import PrincipalDep
from api.deps import AsyncRedisDep, CeleryDep, SettingsDep, StoreDep, TenantDep
from api.errors import ApiError, invalid, not_found
from api.examples import JOB_EXAMPLES
from api.idempotency import Idempotency
from api.listing import check_q, check_tag, parse_sort
from api.reuse import ReuseDep, reused_job
from api.schemas import CancelPublic, ErrorPublic, JobPatch, JobPublic, JobsPublic, Status
from api.submit import prepare_job, submit_job
from tricklab.contract import TERMINAL
from tricklab.server.annotations import set_annotations
from tricklab.server.attempts import aread_attempts
from tricklab.server.listing import decode_cursor, duration_s, list_sorted
from tricklab.server.outcomes import JobNotFound
from tricklab.server.store import Store
from tricklab.server.workers import pending_reason
from tricks.spec import JobSpec, SpecError

router = APIRouter(prefix="/jobs", tags=["jobs"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such job"},
    422: {"model": ErrorPublic, "description": "Invalid input; details name the field path"},
    503: {"model": ErrorPublic, "description": "Redis unreachable"},
}

JOB_ID = r"^j[0-9a-f]{20}(?:[0-9a-f]{8})?$"  # 28 hex digits; ids made before had 20


def job_public(rec: dict[str, Any]) -> dict[str, Any]:
    """The public view of a job record: progress zeroed from the plan until the worker reports."""
    plan = rec.get("plan") or {}
    progress = {
        "epoch": 0,
        "epochs": plan.get("epochs", 0),
        "step": 0,
        "total_steps": plan.get("total_steps", 0),
        "fraction": 0.0,
        "eta_seconds": None,
        "samples_per_second": 0.0,
        **(rec.get("progress") or {}),
    }
    return {
        "id": rec["id"],
        "name": rec.get("name") or "",
        "status": rec["status"],
        "spec": rec.get("spec") or {},
        "created_at": rec.get("created_at"),
        "started_at": rec.get("started_at"),
        "finished_at": rec.get("finished_at"),
        "attempts": rec.get("attempts", 0),
        "error": rec.get("error"),
        "progress": progress,
        "metrics": rec.get("metrics") or {},
        "best": rec.get("best") or {"val_acc": None, "epoch": None},
        "queue": rec.get("queue") or "",
        "plan": rec.get("plan"),
        "result": rec.get("result"),
        "cancel_requested": bool(rec.get("cancel_requested")),
        "spec_hash": rec.get("spec_hash") or None,
        "sweep_id": rec.get("sweep_id") or None,
        "variant": rec.get("variant") or None,
        "lineage": rec.get("lineage"),
        "search_id": rec.get("search_id") or None,
        "tags": rec.get("tags") or [],
        "notes": rec.get("notes") or "",
        "duration_s": _duration_of(rec),
        # from the live workers' heartbeats (cached a few seconds per process)
        "pending_reason": pending_reason(rec),
    }


def _duration_of(rec: dict[str, Any]) -> float | None:
    """finished_at (or now) - started_at, in seconds; the record holds ISO times."""
    started, finished = rec.get("started_at"), rec.get("finished_at")
    if not started:
        return None
    t0 = datetime.fromisoformat(started).timestamp()
    t1 = datetime.fromisoformat(finished).timestamp() if finished else None
    return duration_s(t0, t1)


def load_job(store: Store, job_id: str, tenant: str) -> dict[str, Any]:
    try:
        return store.get_job(job_id, tenant)
    except JobNotFound:
        raise not_found("job", job_id) from None


@router.post(
    "",
    status_code=201,
    response_model=JobPublic,
    responses={
        **ERRORS,
        200: {"model": JobPublic, "description": "Idempotency-Key replay: the job made before"},
        409: {"model": ErrorPublic, "description": "Same Idempotency-Key still in flight"},
        413: {"model": ErrorPublic, "description": "Body too large"},
        429: {"model": ErrorPublic, "description": "Too many queued or running jobs, or rate"},
    },
)
def create_job(
    spec: Annotated[JobSpec, Body(openapi_examples=JOB_EXAMPLES)],
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    celery: CeleryDep,
    tenant: TenantDep,
    reuse: ReuseDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Retries with the same key and body return the same job (200), 24 h",
        ),
    ] = None,
) -> dict[str, Any]:
    """Validate a job spec against its dataset, record the job and queue it."""
    if reuse and (hit := reused_job(store, tenant, spec)) is not None:
        response.status_code = 200  # nothing new was created
        response.headers["Location"] = f"/jobs/{hit['id']}"
        return job_public(hit)
    body = spec.model_dump(mode="json")
    p, ttl = settings.key_prefix, settings.idempotency_ttl_s
    idem = Idempotency.begin(store.r, p, tenant, "jobs", idempotency_key, body, ttl)
    if idem is not None and idem.replay_id is not None:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
        response.headers["Location"] = f"/jobs/{idem.replay_id}"
        return job_public(load_job(store, idem.replay_id, tenant))
    try:
        try:
            job = prepare_job(
                spec, store=store, settings=settings, tenant=tenant, limits=principal.limits
            )
        except SpecError as e:
            raise invalid(list(e.loc), e.msg) from None
        rec = submit_job(job, store=store, celery=celery, tenant=tenant, limits=principal.limits)
    except BaseException:
        if idem is not None:
            idem.release()
        raise
    if idem is not None:
        idem.done(rec["id"])
    response.headers["Location"] = f"/jobs/{rec['id']}"
    return job_public(rec)


@router.get("", response_model=JobsPublic, responses=ERRORS)
def read_jobs(
    store: StoreDep,
    tenant: TenantDep,
    settings: SettingsDep,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=2000, description="next_cursor of the previous page, unchanged"),
    ] = None,
    sort: Annotated[
        str | None,
        Query(
            description="A field path, '-' first for descending: created_at, best.val_acc, "
            "metrics.val_loss, duration_s, progress.samples_per_second, spec.optimizer.lr, ... "
            "Missing values sort last; ties newest first."
        ),
    ] = None,
    tag: Annotated[str | None, Query(description="Only jobs with this tag.")] = None,
    q: Annotated[
        str | None, Query(description="Only jobs whose name (or id) contains this, any case.")
    ] = None,
    sweep_id: Annotated[
        str | None, Query(max_length=64, description="Only the children of this sweep.")
    ] = None,
    search_id: Annotated[
        str | None, Query(max_length=64, description="Only the trials of this search.")
    ] = None,
) -> dict[str, Any]:
    """List jobs, newest first or by any field path, filtered by status, tag, name or sweep."""
    order = parse_sort(sort)
    tag = check_tag(tag, ["query", "tag"]) if tag is not None else None
    q = check_q(q)
    if cursor is not None and order is None and not re.match(JOB_ID, cursor):
        why = "not a cursor this API returned: pass next_cursor unchanged"
        if cursor.startswith("c"):
            why = "this cursor belongs to a sorted listing: pass the same sort= with it"
        raise invalid(["query", "cursor"], why)
    truncated = False
    if order is None and tag is None and q is None and not sweep_id and not search_id:
        jobs, next_cursor = store.list_jobs(
            tenant=tenant, status=status, limit=limit, cursor=cursor
        )
    else:
        try:
            after = decode_cursor(order, cursor) if cursor is not None else None
        except ValueError as e:
            raise invalid(["query", "cursor"], str(e)) from None
        jobs, next_cursor, truncated = list_sorted(
            store,
            tenant=tenant,
            status=status,
            sort=order,
            tag=tag,
            q=q,
            sweep_id=sweep_id or None,
            search_id=search_id or None,
            limit=limit,
            cursor=after,
            scan_max=settings.list_scan_max,
        )
    data = [job_public(j) for j in jobs]
    return {"data": data, "count": len(data), "next_cursor": next_cursor, "truncated": truncated}


@router.get("/{job_id}", response_model=JobPublic, responses=ERRORS)
async def read_job(
    job_id: str,
    store: StoreDep,
    aredis: AsyncRedisDep,
    tenant: TenantDep,
    include: Annotated[
        Literal["attempts"] | None,
        Query(description="attempts: add attempt_history, read from the job's event stream."),
    ] = None,
) -> dict[str, Any]:
    """Read one job: status, progress, latest metrics, best epoch."""
    # async: the most polled route, so no thread-pool hop for its one HGETALL
    try:
        job = job_public(await store.aget_job(aredis, job_id, tenant))
    except JobNotFound:
        raise not_found("job", job_id) from None
    if include == "attempts":  # opt-in: it reads the whole (capped) event stream
        key = store.keys.job_events(job_id)
        job["attempt_history"] = await aread_attempts(aredis, key, job["attempts"])
    return job


@router.patch("/{job_id}", response_model=JobPublic, responses=ERRORS)
def update_job(job_id: str, body: JobPatch, store: StoreDep, tenant: TenantDep) -> dict[str, Any]:
    """Set a job's tags and/or notes (the fields given replace the stored ones)."""
    tags = None
    if body.tags is not None:
        tags = list(dict.fromkeys(check_tag(t, ["tags", i]) for i, t in enumerate(body.tags)))
    try:
        set_annotations(store.r, store.keys, job_id, tenant, tags=tags, notes=body.notes)
    except JobNotFound:
        raise not_found("job", job_id) from None
    return job_public(load_job(store, job_id, tenant))


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=CancelPublic,
    responses={**ERRORS, 409: {"model": ErrorPublic, "description": "The job already finished"}},
)
def cancel_job(job_id: str, store: StoreDep, tenant: TenantDep) -> dict[str, Any]:
    """Cancel a job: a queued one never starts, a running one stops at its next log point."""
    rec = load_job(store, job_id, tenant)
    if rec["status"] in TERMINAL:
        raise _finished(job_id, rec["status"])
    try:
        res = store.cancel(job_id)
    except JobNotFound:
        raise not_found("job", job_id) from None
    if res == "cancelled":
        return {"id": job_id, "status": "cancelled", "cancel_requested": True}
    if res == "cancelling":
        return {"id": job_id, "status": "running", "cancel_requested": True}
    raise _finished(job_id, res)


def _finished(job_id: str, status: str) -> ApiError:
    return ApiError(
        409,
        "job_finished",
        f"job '{job_id}' is already {status}; only queued or running jobs can be cancelled",
        {"status": status},
    )


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={
        **ERRORS,
        200: {"content": {"application/octet-stream": {}}, "description": "safetensors weights"},
        409: {
            "model": ErrorPublic,
            "description": "The job has not succeeded, or is an LR range test (no model)",
        },
    },
)
def read_job_model(
    job_id: str, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> FileResponse:
    """Download the trained weights (safetensors) of a succeeded job; tricks.load_model reads it.

    The file's metadata holds the job spec, input_shape, num_classes and tricklab_version,
    so `tricks.load_model(path)` rebuilds the module. LR range tests have no model (409).
    """
    rec = load_job(store, job_id, tenant)
    if (rec.get("spec") or {}).get("task") == "lr_range_test":
        raise ApiError(
            409,
            "no_model",
            f"job '{job_id}' is an LR range test: range tests produce no model, only the "
            "loss-vs-lr curve and a suggested lr (result.suggested_lr); train a job with that lr "
            "to get one",
            {"task": "lr_range_test", "status": rec["status"]},
        )
    if rec["status"] != "succeeded":
        raise ApiError(
            409,
            "model_not_ready",
            f"job '{job_id}' is {rec['status']}; the model is available once it has succeeded",
            {"status": rec["status"]},
        )
    path = settings.job_dir(job_id) / "model.safetensors"
    if not path.is_file():
        raise ApiError(
            404, "not_found", f"job '{job_id}' succeeded but its model file is missing", None
        )
    return FileResponse(
        path, media_type="application/octet-stream", filename=f"{job_id}.safetensors"
    )
