"""Searches: sample a space of spec values with Optuna, run each point as a job, confirm
the best with fresh seeds. The sampling happens in api/search_driver.py."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.auth import PrincipalDep
from api.deps import SettingsDep, StoreDep, TenantDep
from api.errors import ApiError, invalid, not_found, spec_errors
from api.idempotency import Idempotency, idempotent
from api.schemas import ErrorPublic
from api.search_view import search_public, search_status
from api.submit import prepare_job
from tricklab.contract import TERMINAL
from tricklab.search_spec import SearchSpec, base_epochs, probes, rungs, trial_spec
from tricklab.server import retention, search_retention
from tricklab.server.searches import SearchNotFound, SearchStore
from tricks.spec import JobSpec, SpecError

router = APIRouter(prefix="/searches", tags=["searches"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such search"},
    422: {"model": ErrorPublic, "description": "Invalid search; details name the field"},
    503: {"model": ErrorPublic, "description": "Redis unreachable"},
}
SEARCH_ID = r"^q[0-9a-f]{12,40}$"

EXAMPLE = {
    "name": "digits lr / warm-up / smoothing",
    "base": {
        "data": {"dataset": "digits"},
        "model": {"arch": "mlp", "hidden": [64]},
        "schedule": {"decay": {"kind": "cosine"}},
        "training": {"epochs": 8, "device": "cpu"},
    },
    "space": {
        "optimizer.lr": {"loguniform": [0.003, 1.0]},
        "schedule.warmup.epochs": {"int": [0, 2]},
        "regularization.label_smoothing": {"uniform": [0.0, 0.2]},
    },
    "algorithm": "tpe",
    "trials": 12,
    "max_concurrent": 2,
    "metric": "val_acc",
    "mode": "max",
    "confirm": {"top_k": 2, "seeds": 3},
}


def _check(spec: SearchSpec, store: Any, settings: Any, tenant: str, limits: Any) -> None:
    """422 for a base that is not a valid job, and for a space whose ends are not."""
    if spec.early_stopping is not None:
        epochs = base_epochs(spec.base)
        if not rungs(spec.early_stopping, epochs):
            raise invalid(
                ["body", "early_stopping", "min_epochs"],
                f"min_epochs ({spec.early_stopping.min_epochs}) must be below the base's "
                f"training.epochs ({epochs}): there would be no rung",
            )

    def job_of(raw: dict[str, Any], loc: list[str | int]) -> None:
        try:
            job = JobSpec.model_validate(raw)
        except ValidationError as e:
            err = spec_errors(e, JobSpec)[0]
            raise invalid([*loc, *err["loc"]], err["msg"]) from None
        try:
            prepare_job(job, store=store, settings=settings, tenant=tenant, limits=limits)
        except SpecError as e:
            raise invalid([*loc, *e.loc], e.msg) from None
        except ApiError as e:  # a limit: max_train_samples, max_total_steps, max_parameters
            at = e.details[0]["loc"] if e.details else ["training", "epochs"]
            raise invalid([*loc, *at], e.message) from None

    job_of(spec.base, ["body", "base"])
    for path, value in probes(spec.space):
        try:
            job_of(trial_spec(spec.base, {path: value}), ["body", "space", path])
        except ApiError as e:
            msg = e.message if e.details is None else e.details[0]["msg"]
            raise invalid(
                ["body", "space", path], f"{path} = {value!r} does not make a valid job: {msg}"
            ) from None


def load_search(ss: SearchStore, search_id: str, tenant: str) -> dict[str, Any]:
    try:
        return ss.get(search_id, tenant)
    except SearchNotFound:
        raise not_found("search", search_id) from None


@router.post(
    "",
    status_code=201,
    responses={
        **ERRORS,
        200: {"description": "Idempotency-Key replay: the search made before"},
        409: {"model": ErrorPublic, "description": "Same Idempotency-Key still in flight"},
    },
)
def create_search(
    search: Annotated[SearchSpec, Body(openapi_examples={"tpe": {"value": EXAMPLE}})],
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    principal: PrincipalDep,
    idem: Annotated[Idempotency | None, Depends(idempotent("searches"))],
) -> dict[str, Any]:
    """Validate the base and the space, record the search; the driver starts its trials."""
    ss = SearchStore(store)
    if idem is not None and idem.replay_id is not None:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
        response.headers["Location"] = f"/searches/{idem.replay_id}"
        return search_public(ss, load_search(ss, idem.replay_id, tenant))
    _check(search, store, settings, tenant, principal.limits)
    search_id = ss.create(
        tenant=tenant,
        request=search.model_dump(mode="json", by_alias=True),
        limits=dataclasses.asdict(principal.limits),
    )
    if idem is not None:
        idem.done(search_id)
    ss.wake(search_id)
    response.headers["Location"] = f"/searches/{search_id}"
    return search_public(ss, ss.get(search_id))


@router.get("", responses=ERRORS)
def read_searches(
    store: StoreDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=SEARCH_ID)] = None,
) -> dict[str, Any]:
    """List searches, newest first, with status, counts and the best trial."""
    ss = SearchStore(store)
    found, next_cursor = ss.list_searches(tenant, limit, cursor)
    data = []
    for s in found:
        p = search_public(ss, s)
        data.append(
            {k: p[k] for k in ("id", "name", "status", "algorithm", "metric", "mode", "created_at")}
            | {"counts": p["counts"], "best": p["best"], "trials_planned": p["trials_planned"]}
        )
    return {"data": data, "count": len(data), "next_cursor": next_cursor}


@router.get("/{search_id}", responses=ERRORS)
def read_search(search_id: str, store: StoreDep, tenant: TenantDep) -> dict[str, Any]:
    """The search: trials with their params and metric, the best, budget, importance, confirm."""
    ss = SearchStore(store)
    return search_public(ss, load_search(ss, search_id, tenant))


@router.post(
    "/{search_id}/cancel",
    status_code=202,
    responses={**ERRORS, 409: {"model": ErrorPublic, "description": "The search already finished"}},
)
def cancel_search(search_id: str, store: StoreDep, tenant: TenantDep) -> dict[str, Any]:
    """Cancel a search: no new trial starts; queued trials end at once, running ones at their next log point."""
    ss = SearchStore(store)
    search = load_search(ss, search_id, tenant)
    if search["phase"] == "done" and not search["cancelled"]:
        raise ApiError(
            409,
            "search_finished",
            f"search '{search_id}' is already finished; only unfinished searches can be cancelled",
            {"status": search_status(search, ss.jobs(search))},
        )
    outcomes = _cancel(ss, search_id)
    search = ss.get(search_id)
    return {
        "id": search_id,
        "status": search_status(search, ss.jobs(search)),
        "cancelled": True,
        "jobs": outcomes,
    }


def _cancel(ss: SearchStore, search_id: str) -> list[dict[str, str]]:
    """Mark the search cancelled (the driver starts nothing more) and cancel its unfinished jobs."""
    token = ss.acquire(search_id, wait_s=10.0)
    try:
        ss.save(search_id, cancelled="1")
        ss.close(search_id)
        outcomes = []
        for job_id, job in ss.jobs(ss.get(search_id)).items():
            if job["status"] not in TERMINAL:
                outcomes.append({"job_id": job_id, "outcome": ss.store.cancel(job_id)})
        return outcomes
    finally:
        if token is not None:
            ss.unlock(search_id, token)


@router.delete(
    "/{search_id}",
    status_code=204,
    response_class=Response,
    responses={
        **ERRORS,
        202: {"description": "Trials still running after the wait: deleted once they stop"},
    },
)
async def delete_search(
    search_id: str, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> Response:
    """Delete a search and all its jobs: trials, cool-downs and confirm runs.

    Records, curves, logs, checkpoints and models go. It is cancelled first; 204 once every
    job is gone (within `TRICKLAB_DELETE_WAIT_S`), otherwise 202 and the retention round
    deletes the rest."""
    ss = SearchStore(store)
    search = await run_in_threadpool(load_search, ss, search_id, tenant)
    await run_in_threadpool(_cancel, ss, search_id)
    deadline = time.monotonic() + settings.delete_wait_s
    while True:
        remaining = await run_in_threadpool(
            retention.delete_jobs, store, settings, ss.job_ids(search), search["tenant"]
        )
        if not remaining:
            if not await run_in_threadpool(ss.delete_record, search_id, tenant):
                raise not_found("search", search_id)  # a concurrent DELETE got there first
            return Response(status_code=204)
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1)
    for job_id in remaining:
        await run_in_threadpool(retention.request_delete, store, job_id)
    await run_in_threadpool(search_retention.request_delete, store, search_id)
    return JSONResponse({"id": search_id, "status": "deleting", "jobs": remaining}, status_code=202)
