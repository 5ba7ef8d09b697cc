"""Sweeps and ablations: many child jobs from one base spec, and their results table."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth import Limits, PrincipalDep
from api.deps import CeleryDep, SettingsDep, StoreDep, TenantDep
from api.errors import ApiError, not_found, spec_errors
from api.idempotency import Idempotency, idempotent
from api.schemas import ErrorPublic
from api.submit import api_enqueue, prepare_job
from tricklab import sweep_report
from tricklab.contract import TERMINAL
from tricklab.server import retention, sweep_scheduler
from tricklab.server.records import new_id
from tricklab.server.store import Store
from tricklab.server.sweeps import SweepNotFound, SweepStore, counts, sweep_status
from tricklab.settings import Settings
from tricklab.sweep_spec import SweepSpec, child_spec, expand
from tricks.spec import JobSpec, SpecError

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such sweep"},
    422: {"model": ErrorPublic, "description": "Invalid sweep; details name the variant and field"},
    503: {"model": ErrorPublic, "description": "Redis unreachable"},
}
SWEEP_ID = r"^s[0-9a-f]{20}(?:[0-9a-f]{8})?$"  # 28 hex digits; ids made before had 20
Metric = Literal["final_val_acc", "best_val_acc", "final_val_loss", "final_val_ece"]

EXAMPLE = {
    "name": "digits ablation",
    "base": {
        "data": {"dataset": "digits"},
        "model": {"arch": "mlp", "hidden": [64]},
        "schedule": {"decay": {"kind": "constant"}},
        "training": {"epochs": 5, "device": "cpu"},
    },
    "ablation": [
        {"name": "+cosine", "set": {"schedule.decay.kind": "cosine"}},
        {"name": "+label smoothing", "set": {"regularization.label_smoothing": 0.1}},
        {"name": "+mixup", "set": {"regularization.mixup": {"alpha": 0.2}}},
    ],
    "seeds": 3,
    "max_concurrent": 2,
}


def _variant_error(v: Any, seed: int, loc: list, msg: str) -> ApiError:
    where = ".".join(map(str, loc)) or "spec"
    message = f"variant {v.index} '{v.name}' (seed {seed}): {where}: {msg}"
    details = [{"loc": ["variants", v.index, *loc], "msg": msg, "variant": v.name, "seed": seed}]
    return ApiError(422, "validation_error", message, details)


def _children(
    sweep: SweepSpec, store: Store, settings: Settings, tenant: str, limits: Limits
) -> tuple[list, list[dict[str, Any]]]:
    """Prepare every (variant, seed) exactly as POST /jobs does; the create payloads."""
    variants = expand(sweep)
    children = []
    for v in variants:
        for seed in v.seeds:
            raw = child_spec(sweep, v, seed)
            try:
                spec = JobSpec.model_validate(raw)
            except ValidationError as e:
                err = spec_errors(e, JobSpec)[0]
                raise _variant_error(v, seed, err["loc"], err["msg"]) from None
            try:
                job = prepare_job(
                    spec,
                    store=store,
                    settings=settings,
                    tenant=tenant,
                    limits=limits,
                    variant=v.name,
                    variant_index=str(v.index),
                    seed=str(seed),
                )
            except SpecError as e:
                raise _variant_error(v, seed, list(e.loc), e.msg) from None
            except ApiError as e:  # over max_train_samples, max_total_steps or max_parameters
                loc = e.details[0]["loc"] if e.details else ["training", "epochs"]
                raise _variant_error(v, seed, list(loc), e.message) from None
            children.append(
                {
                    "variant": v.index,
                    "seed": seed,
                    "spec": job.spec,
                    "queue": job.queue,
                    "extra": job.extra,
                }
            )
    # start order: seed-major, so an early look at the table has every variant
    children.sort(key=lambda c: (v_seeds_index(c, variants), c["variant"]))
    return variants, children


def v_seeds_index(c: dict[str, Any], variants: list) -> int:
    return variants[c["variant"]].seeds.index(c["seed"])


def sweep_public(
    ss: SweepStore, sweep: dict[str, Any], metric: str = "final_val_acc"
) -> dict[str, Any]:
    jobs = ss.child_jobs(sweep)
    runs: list[list[dict[str, Any]]] = [[] for _ in sweep["variants"]]
    children_of: list[list[dict[str, Any]]] = [[] for _ in sweep["variants"]]
    for c in sweep["children"]:
        job = jobs.get(c["job_id"])
        status = job["status"] if job else ("cancelled" if sweep["cancelled"] else "pending")
        children_of[c["variant"]].append(
            {"job_id": c["job_id"], "seed": c["seed"], "status": status}
        )
        if job is not None:
            runs[c["variant"]].append(job)
    variants = [{**v, "jobs": children_of[v["index"]]} for v in sweep["variants"]]
    return {
        "id": sweep["id"],
        "name": sweep["name"],
        "kind": sweep["kind"],
        "status": sweep_status(sweep, jobs),
        "created_at": sweep["created_at"],
        "max_concurrent": sweep["max_concurrent"],
        "cancelled": sweep["cancelled"],
        "seeds": sweep["variants"][0]["seeds"] if sweep["variants"] else [],
        "counts": counts(sweep, jobs),
        "metric": metric,
        "test": sweep_report.TEST_NAME,
        "variants": variants,
        "results": sweep_report.build_table(sweep["variants"], runs, metric),
    }


def load_sweep(ss: SweepStore, sweep_id: str, tenant: str) -> dict[str, Any]:
    try:
        return ss.get(sweep_id, tenant)
    except SweepNotFound:
        raise not_found("sweep", sweep_id) from None


@router.post(
    "",
    status_code=201,
    responses={
        **ERRORS,
        200: {"description": "Idempotency-Key replay: the sweep made before"},
        409: {"model": ErrorPublic, "description": "Same Idempotency-Key still in flight"},
    },
)
def create_sweep(
    sweep: Annotated[SweepSpec, Body(openapi_examples={"ablation": {"value": EXAMPLE}})],
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    celery: CeleryDep,
    tenant: TenantDep,
    principal: PrincipalDep,
    idem: Annotated[Idempotency | None, Depends(idempotent("sweeps"))],
) -> dict[str, Any]:
    """Validate every variant up front, record the sweep and start its first children."""
    ss = SweepStore(store)
    if idem is not None and idem.replay_id is not None:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
        response.headers["Location"] = f"/sweeps/{idem.replay_id}"
        return sweep_public(ss, load_sweep(ss, idem.replay_id, tenant))
    variants, children = _children(sweep, store, settings, tenant, principal.limits)
    sweep_id = new_id("s")
    sweep_scheduler.mark_open(store, sweep_id, tenant)
    ss.create(
        sweep_id=sweep_id,
        tenant=tenant,
        name=sweep.name,
        kind=sweep.kind(),
        max_concurrent=sweep.max_concurrent,
        request=sweep.model_dump(mode="json"),
        variants=[
            {
                "index": v.index,
                "name": v.name,
                "change": v.change,
                "compare_to": v.compare_to,
                "seeds": v.seeds,
            }
            for v in variants
        ],
        children=children,  # each child's record gets sweep_id (SweepStore.create)
        max_active_jobs=principal.limits.max_active_jobs,
    )
    if idem is not None:
        idem.done(sweep_id)
    sweep_scheduler.step(ss, sweep_id, api_enqueue(celery))
    response.headers["Location"] = f"/sweeps/{sweep_id}"
    return sweep_public(ss, ss.get(sweep_id))


@router.get("", responses=ERRORS)
def read_sweeps(
    store: StoreDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=SWEEP_ID)] = None,
) -> dict[str, Any]:
    """List sweeps, newest first, with their status and counts."""
    ss = SweepStore(store)
    sweeps, next_cursor = ss.list_sweeps(tenant, limit, cursor)
    data = []
    for s in sweeps:
        jobs = ss.child_jobs(s)
        data.append(
            {
                "id": s["id"],
                "name": s["name"],
                "kind": s["kind"],
                "status": sweep_status(s, jobs),
                "created_at": s["created_at"],
                "variants": len(s["variants"]),
                "counts": counts(s, jobs),
            }
        )
    return {"data": data, "count": len(data), "next_cursor": next_cursor}


@router.get("/{sweep_id}", responses=ERRORS)
def read_sweep(
    sweep_id: str,
    store: StoreDep,
    tenant: TenantDep,
    metric: Annotated[
        Metric, Query(description="The metric rows are compared on (Welch's t-test).")
    ] = "final_val_acc",
) -> dict[str, Any]:
    """The sweep: status from its children, counts and the results table."""
    # Read only: the worker's follow-ups and the reconciler start pending children.
    ss = SweepStore(store)
    return sweep_public(ss, load_sweep(ss, sweep_id, tenant), metric)


@router.post(
    "/{sweep_id}/cancel",
    status_code=202,
    responses={**ERRORS, 409: {"model": ErrorPublic, "description": "The sweep already finished"}},
)
def cancel_sweep(sweep_id: str, store: StoreDep, tenant: TenantDep) -> dict[str, Any]:
    """Cancel a sweep: queued children at once, running ones at their next log point; pending ones never start."""
    ss = SweepStore(store)
    sweep = load_sweep(ss, sweep_id, tenant)
    status = sweep_status(sweep, ss.child_jobs(sweep))
    if status in TERMINAL and not sweep["cancelled"]:
        raise ApiError(
            409,
            "sweep_finished",
            f"sweep '{sweep_id}' is already {status}; only unfinished sweeps can be cancelled",
            {"status": status},
        )
    outcomes = ss.cancel(sweep_id)
    sweep = ss.get(sweep_id)
    return {
        "id": sweep_id,
        "status": sweep_status(sweep, ss.child_jobs(sweep)),
        "cancelled": True,
        "jobs": [{"job_id": j, "outcome": o} for j, o in outcomes],
    }


@router.delete(
    "/{sweep_id}",
    status_code=204,
    response_class=Response,
    responses={
        **ERRORS,
        202: {"description": "Children still running after the wait: deleted once they stop"},
    },
)
async def delete_sweep(
    sweep_id: str, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> Response:
    """Delete a sweep and all its jobs (records, curves, events, logs, checkpoints, models).

    The sweep is cancelled first: pending children never start, queued ones are cancelled,
    running ones stop at their next log point. 204 once every child is gone (within
    `TRICKLAB_DELETE_WAIT_S`); otherwise 202 and the API's retention round deletes the
    rest once they have stopped. A second DELETE is a 404 (after a 204).
    """
    ss = SweepStore(store)
    sweep = await run_in_threadpool(load_sweep, ss, sweep_id, tenant)
    await run_in_threadpool(ss.cancel, sweep_id)
    deadline = time.monotonic() + settings.delete_wait_s
    while True:
        remaining = await run_in_threadpool(retention.delete_sweep_jobs, store, settings, sweep)
        if not remaining:
            if await run_in_threadpool(ss.delete_record, sweep_id, tenant) != "deleted":
                raise not_found("sweep", sweep_id)  # a concurrent DELETE got there first
            return Response(status_code=204)
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1)
    for job_id in remaining:  # the retention round deletes them once they have stopped
        await run_in_threadpool(retention.request_delete, store, job_id)
    await run_in_threadpool(store.r.hset, ss.key(sweep_id), "delete_requested", "1")
    body = {"id": sweep_id, "status": "deleting", "jobs": remaining}
    return JSONResponse(body, status_code=202)
