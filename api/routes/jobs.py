"""Jobs: create, list, read, cancel, download the trained model."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response
from fastapi.responses import FileResponse

from api.auth import PrincipalDep
from api.deps import AsyncRedisDep, CeleryDep, SettingsDep, StoreDep, TenantDep
from api.errors import ApiError, invalid, not_found
from api.examples import JOB_EXAMPLES
from api.idempotency import Idempotency
from api.reuse import ReuseDep, reused_job
from api.schemas import CancelPublic, ErrorPublic, JobPublic, JobsPublic, Status
from api.submit import prepare_job, submit_job
from tricklab.contract import TERMINAL
from tricklab.server.outcomes import JobNotFound
from tricklab.server.store import Store
from tricks.spec import JobSpec, SpecError

router = APIRouter(prefix="/jobs", tags=["jobs"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such job"},
    422: {"model": ErrorPublic, "description": "Invalid input; details name the field path"},
    503: {"model": ErrorPublic, "description": "Redis unreachable"},
}

JOB_ID = r"^j[0-9a-f]{20}$"


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
    }


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
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=JOB_ID, description="next_cursor of the previous page")
    ] = None,
) -> dict[str, Any]:
    """List jobs, newest first, optionally of one status."""
    jobs, next_cursor = store.list_jobs(tenant=tenant, status=status, limit=limit, cursor=cursor)
    data = [job_public(j) for j in jobs]
    return {"data": data, "count": len(data), "next_cursor": next_cursor}


@router.get("/{job_id}", response_model=JobPublic, responses=ERRORS)
async def read_job(
    job_id: str, store: StoreDep, aredis: AsyncRedisDep, tenant: TenantDep
) -> dict[str, Any]:
    """Read one job: status, progress, latest metrics, best epoch."""
    # async: the most polled route, so no thread-pool hop for its one HGETALL
    try:
        return job_public(await store.aget_job(aredis, job_id, tenant))
    except JobNotFound:
        raise not_found("job", job_id) from None


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
