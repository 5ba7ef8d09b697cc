"""GET /sweeps/{id}/curves: one mean curve per variant, with a min–max band over its seeds."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query

from api.deps import SeriesRedisDep, StoreDep, TenantDep
from api.routes.sweeps import ERRORS, load_sweep
from tricklab import sweep_report
from tricklab.server.series import read_series
from tricklab.server.sweeps import SweepStore

router = APIRouter(prefix="/sweeps", tags=["sweeps"])


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
    sweep = load_sweep(ss, sweep_id, tenant)
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
