"""Fork a job: a new job from its checkpoint at an epoch, with a different schedule tail."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from pydantic import Field, ValidationError

from api.auth import PrincipalDep
from api.deps import CeleryDep, SettingsDep, StoreDep, TenantDep
from api.errors import ApiError, invalid
from api.routes.jobs import ERRORS, job_public, load_job
from api.schemas import ErrorPublic, JobPublic
from api.submit import prepare_job, submit_job
from tricklab.sweep_spec import deep_merge
from tricks.pinned import pinned_path
from tricks.spec import JobSpec, SpecError, Strict, validation_errors

router = APIRouter(prefix="/jobs", tags=["jobs"])


class ForkOptimizer(Strict):
    lr: float = Field(gt=0.0, le=100.0, description="New peak lr the new schedule is built on.")


class ForkTraining(Strict):
    epochs: int = Field(ge=2, le=1000, description="New total length, counted from epoch 0.")


class ForkRequest(Strict):
    from_epoch: int = Field(
        ge=1, description="Start from the parent's state after this many epochs."
    )
    name: str | None = Field(None, max_length=200)
    schedule: dict[str, Any] | None = Field(
        None,
        description="Merged into the parent's schedule; a new decay kind replaces the decay.",
    )
    optimizer: ForkOptimizer | None = None
    regularization: dict[str, Any] | None = Field(
        None, description="Merged into the parent's regularization."
    )
    training: ForkTraining | None = None


FORK_EXAMPLE = {
    "from_epoch": 1,
    "schedule": {"decay": {"kind": "step", "step_epochs": 1, "gamma": 0.1}},
}


def _fork_spec(parent: dict[str, Any], req: ForkRequest) -> JobSpec:
    over: dict[str, Any] = {}
    if req.schedule is not None:
        over["schedule"] = req.schedule
    if req.regularization is not None:
        over["regularization"] = req.regularization
    if req.optimizer is not None:
        over["optimizer"] = {"lr": req.optimizer.lr}
    if req.training is not None:
        over["training"] = {"epochs": req.training.epochs}
    raw = deep_merge(parent["spec"], over)
    raw["name"] = (
        req.name or f"{parent.get('name') or parent['id']} (fork @ epoch {req.from_epoch})"
    )
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as e:
        err = validation_errors(e)[0]
        raise invalid(err["loc"], err["msg"]) from None


def _no_checkpoint(parent: dict[str, Any], k: int, why: str) -> ApiError:
    return ApiError(
        409,
        "no_checkpoint",
        f"job '{parent['id']}' has no checkpoint after epoch {k}: {why}",
        {"from_epoch": k, "status": parent["status"]},
    )


@router.post(
    "/{job_id}/fork",
    status_code=201,
    response_model=JobPublic,
    responses={**ERRORS, 409: {"model": ErrorPublic, "description": "No checkpoint at that epoch"}},
)
def fork_job(
    job_id: str,
    req: Annotated[ForkRequest, Body(openapi_examples={"step tail": {"value": FORK_EXAMPLE}})],
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    celery: CeleryDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Start a new job from this job's checkpoint after `from_epoch` epochs, with new overrides."""
    parent = load_job(store, job_id, tenant)
    pspec = parent["spec"]
    k = req.from_epoch
    if pspec.get("task", "train") != "train":
        raise invalid(["from_epoch"], "only training jobs can be forked, not lr range tests")
    spec = _fork_spec(parent, req)
    if k >= spec.training.epochs:
        raise invalid(
            ["from_epoch"],
            f"from_epoch ({k}) must be below training.epochs ({spec.training.epochs}): "
            "the fork would have nothing left to train",
        )
    ptr = pspec.get("training") or {}
    if k > ptr.get("epochs", 0):
        raise invalid(["from_epoch"], f"job '{job_id}' trains only {ptr.get('epochs')} epochs")
    path = pinned_path(settings.job_dir(job_id) / "checkpoints", k)
    if not path.is_file():
        every = ptr.get("checkpoint_every", 1)
        if ptr.get("keep_checkpoints", "epochs") != "epochs":
            why = "it kept only its newest checkpoints (training.keep_checkpoints 'last'); rerun it with keep_checkpoints 'epochs'"
        elif every is not None and k % every:
            why = f"it checkpoints every {every} epochs; fork from a multiple of {every}"
        elif parent["status"] in ("queued", "running"):
            why = f"it is {parent['status']} and has not finished epoch {k} yet; retry later"
        elif every is None:
            why = (
                "it checkpointed by time (training.checkpoint_every null), not at every epoch; "
                f"GET /jobs/{parent['id']}/checkpoints lists the epochs it has, and "
                "training.checkpoint_every 1 keeps every one"
            )
        else:
            why = f"it {parent['status']} before writing it (or its files were removed)"
        raise _no_checkpoint(parent, k, why)

    try:
        job = prepare_job(
            spec, store=store, settings=settings, tenant=tenant, limits=principal.limits
        )
    except SpecError as e:
        raise invalid(list(e.loc), e.msg) from None
    spe = job.plan["steps_per_epoch"]
    if spe != (parent.get("plan") or {}).get("steps_per_epoch", spe):
        raise invalid(["training", "batch_size"], "a fork must keep the parent's steps per epoch")
    lineage = {"parent": job_id, "from_epoch": k, "from_step": k * spe, "children": []}
    job = replace(job, extra={**job.extra, "lineage": lineage})
    rec = submit_job(job, store=store, celery=celery, tenant=tenant, limits=principal.limits)
    store.append_child(job_id, {"id": rec["id"], "from_epoch": k})
    response.headers["Location"] = f"/jobs/{rec['id']}"
    return job_public(rec)
