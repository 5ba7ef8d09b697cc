"""The jobs of a search: each one planned like POST /jobs, its score, and ASHA's chain.

With ASHA a trial is a chain of jobs: segments that stop at each rung
(training.stop_after_epochs) and forks that go on from the rung checkpoint, plus one
cool-down fork per rung (wsd to zero from the rung's lr) whose final metric judges it.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from api.auth import Limits
from api.errors import ApiError
from api.submit import prepare_job
from tricklab.contract import TERMINAL
from tricklab.search_spec import SearchSpec, cooldown_epochs, rungs
from tricklab.server.records import new_id
from tricklab.server.searches import SearchStore
from tricklab.settings import Settings
from tricks.schedules import lr_at
from tricks.spec import JobSpec, SpecError, validation_errors


def metric_value(job: dict[str, Any], metric: str) -> float | None:
    """The trial's score: the final value of the metric (best_val_acc: the best epoch's)
    of a succeeded job; None for anything else."""
    if job.get("status") != "succeeded":
        return None
    if metric == "best_val_acc":
        v = (job.get("best") or {}).get("val_acc")
    else:
        v = (job.get("metrics") or {}).get(metric)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def epochs_spent(job: dict[str, Any] | None) -> int:
    """Epochs this job trained itself (a fork counts from its fork point)."""
    if not job:
        return 0
    result = job.get("result") or {}
    reached = result.get("epochs_run")
    if not isinstance(reached, int):
        reached = int((job.get("progress") or {}).get("epoch") or 0)
    return max(0, reached - int((job.get("lineage") or {}).get("from_epoch") or 0))


def prepare_payload(
    ss: SearchStore, raw: dict[str, Any], search: dict[str, Any], settings: Settings, **more: Any
) -> dict[str, Any]:
    """A payload for a job of this search, checked as POST /jobs checks it. Raises
    SpecError (loc, msg) when the spec is not a valid job."""
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as e:
        err = validation_errors(e)[0]
        raise SpecError(tuple(err["loc"]), err["msg"]) from None
    limits = Limits(**search["limits"])
    try:
        job = prepare_job(
            spec,
            store=ss.store,
            settings=settings,
            tenant=search["tenant"],
            limits=limits,
            search_id=search["id"],
            **more,
        )
    except ApiError as e:  # over max_train_samples and the like
        raise SpecError(("training", "epochs"), e.message) from None
    return {"spec": job.spec, "queue": job.queue, "extra": job.extra}


def valid_spec(raw: dict[str, Any]) -> bool:
    try:
        JobSpec.model_validate(raw)
    except ValidationError:
        return False
    return True


# ------------------------------------------------------------------ ASHA


def promotes(value: float | None, recorded: list[float | None], eta: int, mode: str) -> bool:
    """Asynchronous successive halving's rule (as Ray Tune's ASHA): go on when the value is
    at or above the (1 - 1/η) quantile of every value recorded at this rung, itself
    included. The first trial at a rung always goes on; a missing value never does."""
    if value is None:
        return False
    sign = 1.0 if mode == "max" else -1.0
    xs = sorted(sign * v for v in recorded if v is not None)
    q = (1.0 - 1.0 / eta) * (len(xs) - 1)  # linear interpolation, as numpy's percentile
    lo = math.floor(q)
    hi = min(lo + 1, len(xs) - 1)
    cutoff = xs[lo] + (xs[hi] - xs[lo]) * (q - lo)
    return sign * value >= cutoff


def asha_trial(
    ss: SearchStore,
    search: dict[str, Any],
    spec: SearchSpec,
    settings: Settings,
    t: dict[str, Any],
    jobs: dict[str, dict[str, Any]],
) -> bool:
    """Move one ASHA trial on: judge it at the rung its segment stopped at (by a cool-down
    fork or its raw metric), then promote it (a fork that goes on to the next rung) or
    stop it. True when the trial's entry changed."""
    asha = spec.early_stopping
    assert asha is not None
    seg = t["segments"][-1]
    cur = jobs.get(seg["job_id"])
    if cur is None or cur["status"] not in TERMINAL:
        return False
    if cur["status"] != "succeeded":  # failed (diverged, ...) or cancelled: no value
        t["told"], t["value"] = True, None
        return True
    job_spec = JobSpec.model_validate(cur["spec"])
    epochs = job_spec.training.epochs
    until = seg["until"]
    if until >= epochs:  # the last segment ran the whole schedule
        t["told"], t["value"] = True, metric_value(cur, spec.metric)
        return True
    ladder = rungs(asha, epochs)
    k = ladder.index(until)
    if asha.judge == "raw":
        value = metric_value(cur, spec.metric)
    else:
        cid = t["cooldowns"].get(str(k))
        if cid is None:
            t["cooldowns"][str(k)] = _fork(ss, search, settings, t, cur, until, cooldown=True)
            return True
        cool = jobs.get(cid)
        if cool is None or cool["status"] not in TERMINAL:
            return False
        value = metric_value(cool, spec.metric)
    recorded = search["rungs"].setdefault(str(k), [])
    recorded.append([t["number"], value])
    t["rung_values"][str(until)] = value
    if promotes(value, [v for _, v in recorded], asha.reduction_factor, spec.mode):
        nxt = ladder[k + 1] if k + 1 < len(ladder) else epochs
        job_id = _fork(ss, search, settings, t, cur, until, cooldown=False, stop_after=nxt)
        t["segments"].append({"job_id": job_id, "until": nxt})
    else:
        t["stopped"], t["told"], t["value"] = True, True, None
    return True


def _fork(
    ss: SearchStore,
    search: dict[str, Any],
    settings: Settings,
    t: dict[str, Any],
    parent: dict[str, Any],
    at: int,
    *,
    cooldown: bool,
    stop_after: int | None = None,
) -> str:
    """A job from `parent`'s checkpoint after `at` epochs (the fork machinery of POST
    /jobs/{id}/fork): either the cool-down (lr from its value at the rung linearly to
    zero over cooldown_epochs) or the trial going on to `stop_after` with its own
    schedule. Its payload is written; the caller records the id, then it is created."""
    spec = JobSpec.model_validate(parent["spec"])
    spe = int(parent["plan"]["steps_per_epoch"])
    raw = spec.model_dump(mode="json")
    tr = raw["training"]
    if cooldown:
        asha = SearchSpec.model_validate(search["request"]).early_stopping
        assert asha is not None
        c = cooldown_epochs(asha, at)
        raw["optimizer"]["lr"] = lr_at(
            at * spe,
            lr0=spec.optimizer.lr,
            schedule=spec.schedule,
            steps_per_epoch=spe,
            epochs=spec.training.epochs,
        )
        raw["schedule"] = {
            "per": "batch",
            "decay": {"kind": "wsd", "decay_fraction": c / (at + c), "min_lr": 0.0},
        }
        tr.update(epochs=at + c, stop_after_epochs=None)
        raw["name"] = f"{spec.name or search['name']} · trial {t['number']} cool-down @ {at}"
        role = "cooldown"
    else:
        assert stop_after is not None
        tr["stop_after_epochs"] = stop_after if stop_after < spec.training.epochs else None
        role = "segment"
    payload = prepare_payload(ss, raw, search, settings, trial=str(t["number"]), search_role=role)
    payload["extra"]["lineage"] = {
        "parent": parent["id"],
        "from_epoch": at,
        "from_step": at * spe,
        "children": [],
    }
    job_id = new_id()
    ss.put_payload(search["id"], job_id, payload)
    return job_id
