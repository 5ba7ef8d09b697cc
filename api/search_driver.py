"""The search driver: samples trials with Optuna, runs them as jobs, confirms the best.

One daemon thread per API process (started with the app) steps every open search:

- at once when a trial finishes (the worker's follow-ups push the search id on the
  wake-up list; the thread waits on it with BLPOP), and every POLL_S as a fallback;
- a step runs under the search's lock, so any number of API processes may drive.

A step (`advance`):
1. tells Optuna the metric of every trial whose job finished (a failed or cancelled
   trial is FAIL and never the best);
2. creates any job whose payload was written but whose record is not (a driver that
   died between the two), up to max_concurrent unfinished jobs;
3. in the search phase, asks Optuna for new points while fewer than max_concurrent jobs
   are unfinished: each is planned and checked exactly as POST /jobs does
   (api.submit.prepare_job, with the limits the search was made with); a point that is
   not a valid job is recorded as rejected (Optuna sees FAIL) and does not count as a
   trial;
4. once every trial finished, the confirm stage re-runs the top_k configurations with
   `seeds` fresh seeds each (not the seed the search chose them on: its value is biased
   up by the selection); then the search is done.

The sampler keeps no state of its own: each step rebuilds an in-memory Optuna study from
the record's trials (params, distributions, system attrs, values), so an API restart
loses nothing and a restarted driver continues where the record says.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from celery import Celery
from pydantic import ValidationError

from api.auth import Limits
from api.errors import ApiError
from api.submit import api_enqueue, prepare_job
from tricklab.contract import TERMINAL
from tricklab.search_spec import (
    MAX_REJECTED_IN_A_ROW,
    Choice,
    IntRange,
    LogUniform,
    SearchSpec,
    confirm_seeds,
    cooldown_epochs,
    decode_value,
    grid_points,
    grid_size,
    label,
    rungs,
    trial_spec,
)
from tricklab.server.outcomes import QuotaExceeded
from tricklab.server.records import new_id
from tricklab.server.searches import SearchNotFound, SearchStore
from tricklab.server.store import Store
from tricklab.server.submit import Enqueue, submit
from tricklab.settings import Settings
from tricks.schedules import lr_at
from tricks.spec import JobSpec, SpecError, validation_errors

log = logging.getLogger(__name__)

POLL_S = 2.0


# ------------------------------------------------------------------ optuna


def _optuna() -> Any:
    import optuna  # lazily: ~0.5 s to import, and only the driver needs it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(spec: SearchSpec) -> dict[str, Any]:
    """Optuna's distribution for each path (choices by their JSON label)."""
    d = _optuna().distributions
    out: dict[str, Any] = {}
    for path, dist in spec.space.items():
        if isinstance(dist, Choice):
            out[path] = d.CategoricalDistribution([label(v) for v in dist.choice])
        elif isinstance(dist, IntRange):
            out[path] = d.IntDistribution(*dist.int_)
        elif isinstance(dist, LogUniform):
            out[path] = d.FloatDistribution(*dist.loguniform, log=True)
        else:
            out[path] = d.FloatDistribution(*dist.uniform)
    return out


def sampler(spec: SearchSpec, n_seen: int) -> Any:
    """A fresh sampler per step. Seeded by the search seed and the number of points drawn
    so far, so each ask differs and a rerun of the same history draws the same point."""
    s = _optuna().samplers
    seed = (spec.seed * 1_000_003 + n_seen) % 2**32
    if spec.algorithm == "grid":
        return s.GridSampler(grid_points(spec.space), seed=spec.seed)
    if spec.algorithm == "random":
        return s.RandomSampler(seed=seed)
    # constant_liar: running trials count as bad guesses, so parallel asks spread out
    startup = min(10, max(2, spec.trials // 3))
    return s.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True, multivariate=True)


def study_of(spec: SearchSpec, trials: list[dict[str, Any]], with_sampler: bool = True) -> Any:
    """An in-memory study holding every recorded trial."""
    optuna = _optuna()
    TrialState = optuna.trial.TrialState
    dists = distributions(spec)
    study = optuna.create_study(
        direction="maximize" if spec.mode == "max" else "minimize",
        sampler=sampler(spec, len(trials)) if with_sampler else None,
    )
    for t in trials:
        o = t["optuna"]
        # ASHA's judged values at each rung epoch: what TPE ranks a stopped trial by
        inter = {int(k): v for k, v in (t.get("rung_values") or {}).items() if v is not None}
        if t.get("rejected"):
            state, value = TrialState.FAIL, None
        elif t.get("stopped"):
            state, value = (TrialState.PRUNED if inter else TrialState.FAIL), None
        elif not t.get("told"):
            state, value = TrialState.RUNNING, None
        elif t.get("value") is None:
            state, value = TrialState.FAIL, None
        else:
            state, value = TrialState.COMPLETE, t["value"]
        study.add_trial(
            optuna.trial.create_trial(
                params=o["params"],
                distributions={k: dists[k] for k in o["params"]},
                system_attrs=o.get("system_attrs") or {},
                intermediate_values=inter if state != TrialState.FAIL else None,
                state=state,
                value=value,
            )
        )
    return study


def importance(spec: SearchSpec, trials: list[dict[str, Any]]) -> dict[str, float] | None:
    """Optuna's default parameter importance (fANOVA) over the finished trials."""
    done = [t for t in trials if t.get("told") and t.get("value") is not None]
    if len(done) < 3 or len(spec.space) < 1:
        return None
    try:
        study = study_of(spec, done, with_sampler=False)
        imp = _optuna().importance.get_param_importances(study)
    except (ValueError, RuntimeError) as e:  # e.g. a dimension never varied
        log.info("importance not available: %s", e)
        return None
    return {k: round(float(v), 6) for k, v in imp.items()}


# ------------------------------------------------------------------ values


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


# ------------------------------------------------------------------ stepping


class Driver:
    """Steps searches for one API process."""

    def __init__(self, store: Store, settings: Settings, celery: Celery) -> None:
        self.ss = SearchStore(store)
        self.settings = settings
        self.enqueue: Enqueue = api_enqueue(celery)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="search-driver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        last_all = 0.0
        while not self._stop.is_set():
            try:
                got = self.ss.r.blpop([self.ss.keys.search_wakeups], timeout=1)
                if got:
                    self.step(str(got[1]))
                if time.monotonic() - last_all >= POLL_S:
                    last_all = time.monotonic()
                    for search_id in self.ss.open_searches():
                        self.step(search_id)
            except Exception:  # noqa: BLE001 - Redis away or a bug in one step: retry later
                log.exception("search driver round failed")
                self._stop.wait(1.0)

    def step(self, search_id: str) -> None:
        token = self.ss.acquire(search_id)
        if token is None:
            return  # another driver holds it; it reads the latest state anyway
        try:
            try:
                search = self.ss.get(search_id)
            except SearchNotFound:
                self.ss.close(search_id)
                return
            advance(self.ss, search, self.settings, self.enqueue)
        finally:
            self.ss.unlock(search_id, token)


def advance(ss: SearchStore, search: dict[str, Any], settings: Settings, enqueue: Enqueue) -> None:
    """One step of a search (see the module doc); call it under the search's lock."""
    sid = search["id"]
    if search["cancelled"] or search["phase"] == "done":
        ss.close(sid)
        return
    spec = SearchSpec.model_validate(search["request"])
    trials, confirm = search["trials"], search["confirm"]
    jobs = ss.jobs(search)

    changed = False
    for t in trials:
        if t.get("told") or t.get("rejected"):
            continue
        if spec.early_stopping is not None:
            changed |= _asha_trial(ss, search, spec, settings, t, jobs)
            continue
        job = jobs.get(t.get("job_id") or "")
        if job and job["status"] in TERMINAL:
            t["told"], t["value"] = True, metric_value(job, spec.metric)
            changed = True
    if changed:
        ss.save(
            sid, trials=trials, rungs=search["rungs"], importance=importance(spec, trials) or {}
        )

    unfinished = sum(1 for j in jobs.values() if j["status"] not in TERMINAL)
    room = spec.max_concurrent - unfinished
    room -= _create_missing(ss, search, jobs, room, enqueue)
    if room <= 0:
        return

    if search["phase"] == "search":
        cap = min(spec.trials, grid_size(spec.space)) if spec.algorithm == "grid" else spec.trials
        live = [t for t in trials if not t.get("rejected")]
        while room > 0 and len(live) < cap:
            t = _ask(ss, search, spec, settings, len(live))
            if t is None:  # the search failed (too many rejected points)
                return
            if t.get("rejected"):
                continue
            live.append(t)
            if not _submit(ss, search, t["job_id"], enqueue):
                return  # at the tenant's quota: a later step goes on
            room -= 1
        if len(live) >= cap and all(t.get("told") for t in live):
            if spec.confirm is None or not any(t.get("value") is not None for t in live):
                _finish(ss, sid)
                return
            search["phase"] = "confirm"
            _plan_confirm(ss, search, spec, settings)

    if search["phase"] == "confirm":
        confirm = search["confirm"]
        jobs = ss.jobs(search)
        room = spec.max_concurrent - sum(1 for j in jobs.values() if j["status"] not in TERMINAL)
        room -= _create_missing(ss, search, jobs, room, enqueue)
        if confirm and all(
            c["job_id"] in jobs and jobs[c["job_id"]]["status"] in TERMINAL for c in confirm
        ):
            _finish(ss, sid)


def _finish(ss: SearchStore, sid: str) -> None:
    ss.save(sid, phase="done", finished_at=f"{time.time():.6f}")
    ss.close(sid)


def _create_missing(
    ss: SearchStore,
    search: dict[str, Any],
    jobs: dict[str, dict[str, Any]],
    room: int,
    enqueue: Enqueue,
) -> int:
    """Create jobs whose payload exists but whose record does not; returns how many."""
    made = 0
    for job_id in ss.job_ids(search):
        if made >= room:
            break
        if job_id in jobs:
            continue
        if not _submit(ss, search, job_id, enqueue):
            break
        made += 1
    return made


def _submit(ss: SearchStore, search: dict[str, Any], job_id: str, enqueue: Enqueue) -> bool:
    """Create the job from its payload; False when the tenant is at its quota."""
    p = ss.payload(search["id"], job_id)
    if p is None:
        return True  # nothing can ever create it
    try:
        submit(
            ss.store,
            p["spec"],
            tenant=search["tenant"],
            queue=p["queue"],
            extra=p["extra"],
            enqueue=enqueue,
            max_active=search["limits"].get("max_active_jobs") or None,
            job_id=job_id,
        )
    except QuotaExceeded:
        return False
    return True


def _prepare(
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


def _ask(
    ss: SearchStore, search: dict[str, Any], spec: SearchSpec, settings: Settings, n_live: int
) -> dict[str, Any] | None:
    """Draw one point, record it as a trial (or a rejected point); None when the search
    had to stop."""
    trials = search["trials"]
    study = study_of(spec, trials)
    dists = distributions(spec)
    trial = study.ask(fixed_distributions=dists)
    frozen = study.trials[-1]
    params = {path: decode_value(spec.space[path], trial.params[path]) for path in spec.space}
    entry: dict[str, Any] = {
        "number": len(trials),
        "params": params,
        "optuna": {
            "params": dict(trial.params),
            "system_attrs": {k: v for k, v in frozen.system_attrs.items() if _jsonable(v)},
        },
        "told": False,
        "value": None,
    }
    raw = trial_spec(spec.base, params)
    until = None
    if spec.early_stopping is not None:
        epochs = JobSpec.model_validate(raw).training.epochs if _valid(raw) else 0
        until = (rungs(spec.early_stopping, epochs) or [epochs])[0]
        raw = trial_spec(
            raw,
            {
                "training.stop_after_epochs": until,
                "training.keep_checkpoints": "epochs",  # the rung checkpoint is a fork point
                "training.checkpoint_every": 1,
            },
        )
    try:
        payload = _prepare(ss, raw, search, settings, trial=str(n_live))
    except SpecError as e:
        where = ".".join(map(str, e.loc)) or "spec"
        entry.update(rejected=f"{where}: {e.msg}", told=True)
        trials.append(entry)
        in_row = 0
        for t in reversed(trials):
            if not t.get("rejected"):
                break
            in_row += 1
        if in_row >= MAX_REJECTED_IN_A_ROW:
            ss.save(
                search["id"],
                trials=trials,
                error=f"{in_row} sampled points in a row were not valid jobs; last: {where}: {e.msg}",
            )
            _finish(ss, search["id"])
            return None
        ss.save(search["id"], trials=trials)
        return entry
    entry["job_id"] = new_id()
    if until is not None:
        entry.update(segments=[{"job_id": entry["job_id"], "until": until}], cooldowns={})
        entry["rung_values"] = {}
    ss.put_payload(search["id"], entry["job_id"], payload)  # before the trial names it
    trials.append(entry)
    ss.save(search["id"], trials=trials)
    return entry


def _valid(raw: dict[str, Any]) -> bool:
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


def _asha_trial(
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
    payload = _prepare(ss, raw, search, settings, trial=str(t["number"]), search_role=role)
    payload["extra"]["lineage"] = {
        "parent": parent["id"],
        "from_epoch": at,
        "from_step": at * spe,
        "children": [],
    }
    job_id = new_id()
    ss.put_payload(search["id"], job_id, payload)
    return job_id


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool | list | dict)


def _plan_confirm(
    ss: SearchStore, search: dict[str, Any], spec: SearchSpec, settings: Settings
) -> None:
    """The confirm runs: the top_k distinct configurations, `seeds` fresh seeds each."""
    assert spec.confirm is not None
    scored = [t for t in search["trials"] if t.get("value") is not None]
    scored.sort(key=lambda t: t["value"], reverse=spec.mode == "max")
    top, seen = [], set()
    for t in scored:
        k = label(t["params"])
        if k not in seen:
            seen.add(k)
            top.append(t)
        if len(top) == spec.confirm.top_k:
            break
    base_seed = int(((spec.base.get("training") or {}).get("seed")) or 0)
    confirm = []
    for rank, t in enumerate(top):
        for seed in confirm_seeds(base_seed + 1, spec.confirm.seeds):
            raw = trial_spec(spec.base, {**t["params"], "training.seed": seed})
            try:
                payload = _prepare(ss, raw, search, settings, confirm_rank=str(rank))
            except SpecError:  # it ran as a trial, so it is valid; a limit changed
                continue
            job_id = new_id()
            ss.put_payload(search["id"], job_id, payload)
            confirm.append({"rank": rank, "number": t["number"], "seed": seed, "job_id": job_id})
    search["confirm"] = confirm
    ss.save(search["id"], phase="confirm", confirm=confirm)
