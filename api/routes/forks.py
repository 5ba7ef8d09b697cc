"""Fork a job: a new job from its checkpoint at an epoch, with a different schedule tail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from pydantic import Field, ValidationError

from api import quotas
from api.auth import PrincipalDep
from api.celery_client import enqueue_training
from api.deps import CeleryDep, SettingsDep, StoreDep, TenantDep
from api.errors import ApiError, invalid
from api.planning import choose_queue, plan_job, record_extra
from api.routes.jobs import ERRORS, job_public, load_job
from api.schemas import ErrorPublic, JobPublic
from api.uploads import DatasetRepo
from tricklab.server.store import QuotaExceeded, Store
from tricklab.sweep_spec import deep_merge
from tricks.pinned import pinned_path
from tricks.spec import JobSpec, SpecError, Strict, validation_errors

router = APIRouter(prefix="/jobs", tags=["jobs"])

_APPEND_CHILD = """
local raw = redis.call('HGET', KEYS[1], 'lineage')
local lin = {}
if raw and raw ~= '' and raw ~= 'null' then lin = cjson.decode(raw) end
if type(lin.children) ~= 'table' then lin.children = {} end
table.insert(lin.children, cjson.decode(ARGV[1]))
redis.call('HSET', KEYS[1], 'lineage', cjson.encode(lin))
return #lin.children
"""


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
        elif k % every:
            why = f"it checkpoints every {every} epochs; fork from a multiple of {every}"
        elif parent["status"] in ("queued", "running"):
            why = f"it is {parent['status']} and has not finished epoch {k} yet; retry later"
        else:
            why = f"it {parent['status']} before writing it (or its files were removed)"
        raise _no_checkpoint(parent, k, why)

    repo = DatasetRepo(store.r, settings.key_prefix, settings.datasets_dir)
    try:
        meta, plan = plan_job(spec, repo, tenant)
    except SpecError as e:
        raise invalid(list(e.loc), e.msg) from None
    if plan["steps_per_epoch"] != (parent.get("plan") or {}).get(
        "steps_per_epoch", plan["steps_per_epoch"]
    ):
        raise invalid(["training", "batch_size"], "a fork must keep the parent's steps per epoch")
    queue = choose_queue(spec, store, settings.worker_ttl_s)
    lineage = {
        "parent": job_id,
        "from_epoch": k,
        "from_step": k * plan["steps_per_epoch"],
        "children": [],
    }
    quotas.check_train_samples(plan["epochs"], plan["n_train"], principal.limits)
    try:
        rec = store.create_job(
            spec.model_dump(mode="json"),
            tenant=tenant,
            queue=queue,
            extra=record_extra(spec, meta, plan, lineage=lineage),
            max_active=principal.limits.max_active_jobs,
        )
    except QuotaExceeded as e:
        raise quotas.active_jobs_error(e.active, e.max_active) from None
    _add_child(store, job_id, {"id": rec["id"], "from_epoch": k})
    try:
        enqueue_training(celery, rec["id"], queue)
    except Exception:  # noqa: BLE001, S110 - left queued for the reconciler
        pass
    response.headers["Location"] = f"/jobs/{rec['id']}"
    return job_public(rec)


def _add_child(store: Store, parent_id: str, child: dict[str, Any]) -> None:
    """Append to the parent's lineage.children atomically (forks may race)."""
    import json

    store.r.eval(_APPEND_CHILD, 1, store.job_key(parent_id), json.dumps(child))
