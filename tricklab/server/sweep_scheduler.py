"""Advance sweeps: create a sweep's pending children as room frees up.

A child is *pending* until its job record exists. `step` creates the next pending
children, through the one submit path (tricklab.server.submit), while fewer than
max_concurrent created children are unfinished and the tenant is under the
max_active_jobs quota the sweep was made with. Who steps a sweep:

- POST /sweeps, once, as it writes the sweep (after `mark_open`);
- the worker's follow-ups, when a job finishes (worker/followups.py): the job's own
  sweep, and the tenant's other open sweeps, since the finish freed a quota slot;
- the reconciler, every round, for every open sweep (worker/reconcile.py): a slot freed
  without a worker (a queued job cancelled through the API) and a follow-up that failed.

No read path steps a sweep: GET /sweeps/{id} changes nothing.

Open sweeps: a hash (keyspace: sweeps_open, sweep id → tenant) lists the sweeps that still
have pending children. `mark_open` adds a sweep as it is made; a step removes it
once nothing is left to start (every child created, or the sweep cancelled or gone).
A sweep written before this hash existed joins it at its next step.

`step` runs under the sweep's lock (SweepStore's, which cancel takes too); a caller
that finds the lock taken leaves a dirty mark that makes the holder run once more
before it lets go, so a finish is never lost between two steps. It is idempotent (a
child whose record exists is never created again), so any number of callers may step
a sweep at any time.
"""

from __future__ import annotations

import json
import logging

from tricklab.contract import TERMINAL
from tricklab.server import reuse
from tricklab.server.outcomes import QuotaExceeded
from tricklab.server.store import Store
from tricklab.server.submit import Enqueue, submit
from tricklab.server.sweeps import LOCK_TTL_MS, SweepNotFound, SweepStore

log = logging.getLogger(__name__)


def mark_open(store: Store, sweep_id: str, tenant: str) -> None:
    """List a new sweep as open. Call it before writing the sweep: if the writer dies
    before its first step, a later step still finds the sweep (or drops the id when no
    sweep was written)."""
    store.r.hset(store.keys.sweeps_open, sweep_id, tenant)


def advance_open(
    store: Store, enqueue: Enqueue, *, tenant: str | None = None, skip: str | None = None
) -> int:
    """Step every open sweep (of one tenant when given, but `skip`); returns children started.

    One sweep that fails to step is logged and does not hold up the others."""
    sweeps = SweepStore(store)
    started = 0
    for sweep_id, owner in store.r.hgetall(store.keys.sweeps_open).items():
        if sweep_id == skip or (tenant is not None and owner != tenant):
            continue
        try:
            started += step(sweeps, sweep_id, enqueue)
        except Exception:  # noqa: BLE001 - the next round retries it
            log.exception("sweep %s: could not start its pending children", sweep_id)
    return started


def step(sweeps: SweepStore, sweep_id: str, enqueue: Enqueue) -> int:
    """Start pending children up to the caps; returns how many this call started."""
    r = sweeps.r
    dirty = sweeps.keys.sweep_dirty(sweep_id)
    started = 0
    while True:
        r.set(dirty, "1", px=LOCK_TTL_MS)
        token = sweeps.acquire(sweep_id)
        if token is None:
            return started  # the holder sees the dirty mark and runs again
        try:
            while r.getdel(dirty):
                started += _promote(sweeps, sweep_id, enqueue)
        finally:
            sweeps.unlock(sweep_id, token)
        if not r.exists(dirty):
            return started


def _promote(sweeps: SweepStore, sweep_id: str, enqueue: Enqueue) -> int:
    store, r = sweeps.store, sweeps.r
    try:
        sweep = sweeps.get(sweep_id)
    except SweepNotFound:
        r.hdel(store.keys.sweeps_open, sweep_id)
        return 0
    if sweep["cancelled"]:
        r.hdel(store.keys.sweeps_open, sweep_id)
        return 0
    jobs = sweeps.child_jobs(sweep)
    room = sweep["max_concurrent"] - sum(1 for j in jobs.values() if j["status"] not in TERMINAL)
    pending = [c["job_id"] for c in sweep["children"] if c["job_id"] not in jobs]
    started = gone = 0
    for job_id in pending:
        if room <= 0:
            break
        raw = r.hget(sweeps.keys.sweep_payload(sweep_id), job_id)
        if raw is None:
            gone += 1  # its payload is gone: it can never start
            continue
        p = json.loads(raw)
        try:
            submit(
                store,
                p["spec"],
                tenant=sweep["tenant"],
                queue=p["queue"],
                extra=p["extra"],
                enqueue=enqueue,
                max_active=sweep["max_active_jobs"] or None,
                job_id=job_id,
            )
        except QuotaExceeded:
            break  # the tenant is at its quota: the rest stay pending for a later step
        if p["extra"].get("spec_hash"):
            reuse.register(store, sweep["tenant"], p["extra"]["spec_hash"], job_id)
        room -= 1
        started += 1
    if started + gone >= len(pending):  # nothing left that a later step could start
        r.hdel(store.keys.sweeps_open, sweep_id)
    else:
        r.hset(store.keys.sweeps_open, sweep_id, sweep["tenant"])
    return started
