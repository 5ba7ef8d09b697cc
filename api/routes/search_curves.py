"""GET /searches/{id}/curves: one curve per trial (its ASHA segments joined, since a
segment's fork goes on at the global step it stopped at) and its cool-down forks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import SeriesRedisDep, StoreDep, TenantDep
from api.routes.searches import ERRORS, load_search
from api.search_view import trial_jobs
from tricklab.server.searches import SearchStore
from tricklab.server.series import read_series

router = APIRouter(prefix="/searches", tags=["searches"])


def _curve(rb: Any, store: Any, job_ids: list[str], metric: str, max_points: int) -> dict:
    steps: list[int] = []
    values: list[float | None] = []
    for job_id in job_ids:
        got = read_series(rb, store.series_prefix(job_id), [metric], None, max_points)
        s = got["series"].get(metric) or {"step": [], "value": []}
        for st, v in zip(s["step"], s["value"], strict=True):
            if not steps or st > steps[-1]:  # a fork never repeats the steps before it
                steps.append(st)
                values.append(v)
    return {"step": steps, "value": values}


@router.get("/{search_id}/curves", responses=ERRORS)
def read_search_curves(
    search_id: str,
    store: StoreDep,
    rb: SeriesRedisDep,
    tenant: TenantDep,
    metric: Annotated[str, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "val_acc",
    max_points: Annotated[int, Query(ge=2, le=5000)] = 400,
) -> dict[str, Any]:
    """Each trial's curve of `metric` (step on x), with its cool-down forks' curves."""
    ss = SearchStore(store)
    search = load_search(ss, search_id, tenant)
    out = []
    for t in search["trials"]:
        if t.get("rejected"):
            continue
        segs, cools = trial_jobs(t)
        out.append(
            {
                "number": t["number"],
                "params": t["params"],
                "jobs": segs,
                **_curve(rb, store, segs, metric, max_points),
                "cooldowns": [
                    {"job_id": j, **_curve(rb, store, [j], metric, max_points)} for j in cools
                ],
            }
        )
    return {"id": search_id, "metric": metric, "trials": out}
