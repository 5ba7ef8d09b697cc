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
import threading
import time
from typing import Any

from celery import Celery

from api.search_jobs import asha_trial, metric_value, prepare_payload, valid_spec
from api.search_optuna import distributions, importance, study_of
from api.submit import api_enqueue
from tricklab.contract import TERMINAL
from tricklab.search_spec import (
    MAX_REJECTED_IN_A_ROW,
    SearchSpec,
    confirm_seeds,
    decode_value,
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
from tricks.spec import JobSpec, SpecError

log = logging.getLogger(__name__)

POLL_S = 2.0


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
            changed |= asha_trial(ss, search, spec, settings, t, jobs)
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
        epochs = JobSpec.model_validate(raw).training.epochs if valid_spec(raw) else 0
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
        payload = prepare_payload(ss, raw, search, settings, trial=str(n_live))
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
                payload = prepare_payload(ss, raw, search, settings, confirm_rank=str(rank))
            except SpecError:  # it ran as a trial, so it is valid; a limit changed
                continue
            job_id = new_id()
            ss.put_payload(search["id"], job_id, payload)
            confirm.append({"rank": rank, "number": t["number"], "seed": seed, "job_id": job_id})
    search["confirm"] = confirm
    ss.save(search["id"], phase="confirm", confirm=confirm)
