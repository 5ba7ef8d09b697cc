"""Metric curves and the planned vs actual learning rate of a job."""

from __future__ import annotations

import re
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import SeriesRedisDep, StoreDep, TenantDep
from api.errors import invalid
from api.heavy import HeavyDep
from api.routes.jobs import ERRORS, load_job
from api.schemas import CurvesPublic, LrPublic
from tricklab.server.series import read_series, series_names
from tricklab.server.store import Store
from tricks.schedules import lr_sampled
from tricks.spec import JobSpec

router = APIRouter(prefix="/jobs", tags=["curves"])

METRIC = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_METRICS = 32
# Without max_points a planned curve longer than this is downsampled to it anyway.
MAX_PLANNED = 100_000

MaxPoints = Annotated[
    int | None,
    Query(
        ge=2,
        le=100_000,
        description="At most this many points per series (first, last, min, max kept).",
    ),
]


def parse_metrics(raw: str | None) -> list[str] | None:
    if raw is None or raw.strip() == "":
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    bad = [n for n in names if not METRIC.match(n)]
    if bad:
        raise invalid(
            ["query", "metrics"], f"'{bad[0]}' is not a metric name (letters, digits, _ . : -)"
        )
    if len(names) > MAX_METRICS:
        raise invalid(["query", "metrics"], f"{len(names)} metrics asked, at most {MAX_METRICS}")
    return list(dict.fromkeys(names))


@router.get("/{job_id}/curves", response_model=CurvesPublic, responses=ERRORS)
def read_job_curves(
    job_id: str,
    store: StoreDep,
    rb: SeriesRedisDep,
    tenant: TenantDep,
    metrics: Annotated[
        str | None,
        Query(description="Comma-separated names, e.g. train_loss,val_acc; all when absent."),
    ] = None,
    since: Annotated[int | None, Query(ge=-1, description="Only points with step > since.")] = None,
    max_points: MaxPoints = None,
) -> dict[str, Any]:
    """Read a job's metric series (step on x), downsampled keeping first, last, min and max."""
    names = parse_metrics(metrics)
    load_job(store, job_id, tenant)
    prefix = store.series_prefix(job_id)
    if names is None:
        names = series_names(rb, prefix)
    return read_series(rb, prefix, names, since, max_points)


@router.get("/{job_id}/lr", response_model=LrPublic, responses=ERRORS)
async def read_job_lr(
    job_id: str,
    store: StoreDep,
    rb: SeriesRedisDep,
    tenant: TenantDep,
    heavy: HeavyDep,
    max_points: MaxPoints = None,
) -> Response:
    """Read the planned learning rate of every step next to the one the worker logged."""
    return await heavy.run(tenant, _job_lr, store, rb, job_id, tenant, max_points)


def _job_lr(
    store: Store, rb: redis.Redis, job_id: str, tenant: str, max_points: int | None
) -> Response:
    """On the heavy pool: the planned curve sampled (never every step), the logged one
    downsampled in Redis, both rendered to JSON there too."""
    rec = load_job(store, job_id, tenant)
    planned: dict[str, list] = {"step": [], "lr": []}
    plan = rec.get("plan") or {}
    spec = JobSpec.model_validate(rec["spec"])
    if plan and spec.task == "train":
        steps, lrs = lr_sampled(
            lr0=spec.optimizer.lr,
            schedule=spec.schedule,
            steps_per_epoch=plan["steps_per_epoch"],
            epochs=plan["epochs"],
            max_points=min(max_points or MAX_PLANNED, MAX_PLANNED),
        )
        planned = {"step": steps.tolist(), "lr": lrs.tolist()}
    got = read_series(rb, store.series_prefix(job_id), ["lr"], None, max_points)
    s = got["series"].get("lr") or {"step": [], "value": []}
    out = {"planned": planned, "actual": {"step": s["step"], "lr": s["value"]}}
    return Response(LrPublic.model_validate(out).model_dump_json(), media_type="application/json")
