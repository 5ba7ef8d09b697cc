"""Sweeps and ablations: many child jobs from one base spec, and their results table."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import ValidationError

from api import quotas
from api.auth import Limits, PrincipalDep
from api.celery_client import enqueue_training
from api.deps import CeleryDep, SeriesRedisDep, SettingsDep, StoreDep, TenantDep
from api.errors import ApiError, not_found
from api.idempotency import Idempotency, idempotent
from api.planning import choose_queue, plan_job, record_extra
from api.schemas import ErrorPublic
from api.uploads import DatasetRepo
from tricklab import sweep_report
from tricklab.server.series import read_series
from tricklab.server.store import TERMINAL
from tricklab.server.sweeps import SweepNotFound, SweepStore, counts, sweep_status
from tricklab.sweep_spec import SweepSpec, child_spec, expand
from tricks.spec import JobSpec, SpecError, validation_errors

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such sweep"},
    422: {"model": ErrorPublic, "description": "Invalid sweep; details name the variant and field"},
    503: {"model": ErrorPublic, "description": "Redis unreachable"},
}
SWEEP_ID = r"^s[0-9a-f]{20}$"
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
    sweep: SweepSpec, store: Any, settings: Any, tenant: str, limits: Limits
) -> tuple[list, list[dict[str, Any]]]:
    """Validate every (variant, seed) exactly as POST /jobs does; the create payloads."""
    repo = DatasetRepo(store.r, settings.key_prefix, settings.datasets_dir)
    variants = expand(sweep)
    children = []
    for v in variants:
        for seed in v.seeds:
            raw = child_spec(sweep, v, seed)
            try:
                spec = JobSpec.model_validate(raw)
            except ValidationError as e:
                err = validation_errors(e)[0]
                raise _variant_error(v, seed, err["loc"], err["msg"]) from None
            try:
                meta, plan = plan_job(spec, repo, tenant)
            except SpecError as e:
                raise _variant_error(v, seed, list(e.loc), e.msg) from None
            try:
                quotas.check_train_samples(plan["epochs"], plan["n_train"], limits)
            except ApiError as e:
                raise _variant_error(v, seed, ["training", "epochs"], e.message) from None
            dumped = spec.model_dump(mode="json")
            children.append(
                {
                    "variant": v.index,
                    "seed": seed,
                    "spec": dumped,
                    "queue": choose_queue(spec, store, settings.worker_ttl_s),
                    "extra": record_extra(
                        spec,
                        meta,
                        plan,
                        variant=v.name,
                        variant_index=str(v.index),
                        seed=str(seed),
                    ),
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


def _load(ss: SweepStore, sweep_id: str, tenant: str) -> dict[str, Any]:
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
    if idem is not None and idem.replay_id is not None:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
        response.headers["Location"] = f"/sweeps/{idem.replay_id}"
        return sweep_public(SweepStore(store), _load(SweepStore(store), idem.replay_id, tenant))
    variants, children = _children(sweep, store, settings, tenant, principal.limits)
    ss = SweepStore(store)
    sweep_id = ss.create(
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
    ss.step(sweep_id, lambda job_id, queue: enqueue_training(celery, job_id, queue))
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
    celery: CeleryDep,
    tenant: TenantDep,
    metric: Annotated[
        Metric, Query(description="The metric rows are compared on (Welch's t-test).")
    ] = "final_val_acc",
) -> dict[str, Any]:
    """The sweep: status from its children, counts and the results table."""
    ss = SweepStore(store)
    _load(ss, sweep_id, tenant)
    ss.step(sweep_id, lambda job_id, queue: enqueue_training(celery, job_id, queue))
    return sweep_public(ss, _load(ss, sweep_id, tenant), metric)


@router.post(
    "/{sweep_id}/cancel",
    status_code=202,
    responses={**ERRORS, 409: {"model": ErrorPublic, "description": "The sweep already finished"}},
)
def cancel_sweep(sweep_id: str, store: StoreDep, tenant: TenantDep) -> dict[str, Any]:
    """Cancel a sweep: queued children at once, running ones at their next log point; pending ones never start."""
    ss = SweepStore(store)
    sweep = _load(ss, sweep_id, tenant)
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


@router.get("/{sweep_id}/curves", responses=ERRORS)
def read_sweep_curves(
    sweep_id: str,
    store: StoreDep,
    rb: SeriesRedisDep,
    tenant: TenantDep,
    metric: Annotated[str, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "val_acc",
    x: Annotated[
        Literal["step", "fraction"],
        Query(description="Align seeds by step or by fraction of the schedule."),
    ] = "step",
    max_points: Annotated[int, Query(ge=2, le=5000)] = 400,
) -> dict[str, Any]:
    """One mean curve per variant with a min–max band over its seeds."""
    ss = SweepStore(store)
    sweep = _load(ss, sweep_id, tenant)
    jobs = ss.child_jobs(sweep)
    per_variant: list[list] = [[] for _ in sweep["variants"]]
    for c in sweep["children"]:
        job = jobs.get(c["job_id"])
        if job is None:
            continue
        got = read_series(rb, store.series_prefix(job["id"]), [metric], None, 4 * max_points)
        s = got["series"].get(metric)
        if not s or not s["step"]:
            continue
        steps = np.asarray(s["step"], float)
        vals = np.asarray([np.nan if v is None else v for v in s["value"]], float)
        if x == "fraction":
            total = (job.get("plan") or {}).get("total_steps") or 0
            if total <= 0:
                continue
            steps = (steps + 1) / total  # a value at step t is after t+1 updates
        per_variant[c["variant"]].append((steps, vals))
    return {
        "id": sweep_id,
        "metric": metric,
        "x": x,
        "variants": [
            {
                "variant": v["index"],
                "name": v["name"],
                "seeds": len(per_variant[v["index"]]),
                **sweep_report.band(per_variant[v["index"]], max_points),
            }
            for v in sweep["variants"]
        ],
    }
