"""Bounded storage: deleting a job (Redis and disk) and the periodic retention round.

Deleting a job (DELETE /jobs/{id}, DELETE /sweeps/{id}, the TTL below) is one script,
lua/job_delete.lua, that drops every key of the job and takes its id out of every index
(Store.delete_job), then the job's directory on disk (checkpoints, model). Only a finished
job is deleted: a running one is cancelled first, through the ordinary cancel path, and
deleted once its worker has stopped it. A worker that writes after the deletion (a log line
flushed late) would leave a stray key; the ids deleted in the last DELETED_GRACE_S are kept
in a zset and a retention round deletes such leftovers again.

A retention round (`run_round`; the API runs one every settings.retention_interval_s, one
process at a time under a lock; `python -m tricklab.server.retention` runs one by hand):

- jobs finished more than settings.job_ttl_days ago are deleted (0: kept forever), and so
  are finished jobs whose deletion was asked for while they were running;
- checkpoints, with settings.retain_checkpoints "last" (the default): a job finished more
  than settings.checkpoint_grace_hours ago keeps, of its per-epoch checkpoints
  (`checkpoints/epochs/`, training.keep_checkpoints "epochs"), only the newest and its
  best epoch's (the fork points most asked for), and of its rolling set (`ckpt-<step>.pt`)
  the newest. A job that is not finished is never touched, so a job killed mid-run
  resumes as before, and any epoch can be forked from during the grace period. "epochs"
  keeps every file a job wrote. Why "last" by default: per-epoch copies grow with epochs
  x model size (1.4 GB for 40 epochs of a 2048x2048 MLP) and only an explicit fork, soon
  after the run, reads them;
- a sweep or a search goes as a whole: when its deletion was asked for, or when it is
  finished and every job of it is past the TTL (tricklab.server.search_retention);
- worker records with no heartbeat for settings.worker_prune_after x worker_ttl_s go;
- broker messages of jobs that are no longer queued (cancelled while queued, deleted) are
  removed from the queue lists, so a queue no worker consumes stops growing.

The TTL is enforced by this round rather than by Redis EXPIRE: an expiring hash would
leave its id in the tenant's indexes and its files on disk.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tricklab.contract import QUEUES, TERMINAL, TRAIN_TASK
from tricklab.server import search_retention
from tricklab.server.store import Store
from tricklab.settings import Settings
from tricks.pinned import PINNED_DIR

log = logging.getLogger(__name__)

DELETED_GRACE_S = 3600.0  # how long a deleted job's late writes are looked for
LOCK_MS = 120_000
_ROLLING = re.compile(r"^ckpt-(\d+)\.pt$")  # tricks.checkpoint.checkpoint_path
_PINNED = re.compile(r"^epoch-(\d+)\.pt$")  # tricks.pinned.pinned_path
_JOB_ID = re.compile(r"\bj[0-9a-f]{20}(?:[0-9a-f]{8})?\b")
# kombu's Redis transport keeps priority levels 3, 6, 9 of queue q in "q\x06\x16<n>".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


# ------------------------------------------------------------------ deleting


def delete_job(store: Store, settings: Settings, job_id: str, tenant: str | None = None) -> str:
    """Delete a finished job's keys (one script) and then its files. Store.delete_job's
    outcome: 'deleted', 'missing' or the status of a job that is not finished."""
    res = store.delete_job(job_id, tenant)
    if res == "deleted":
        remove_job_dir(settings, job_id)
    return res


def remove_job_dir(settings: Settings, job_id: str) -> None:
    shutil.rmtree(settings.job_dir(job_id), ignore_errors=True)


def request_delete(store: Store, job_id: str) -> bool:
    """Mark a job to be deleted by a retention round once it is finished (False: gone)."""
    return store.flag(job_id, "delete_requested", "1")


# ---------------------------------------------------------------- checkpoints


def prune_checkpoints(checkpoint_dir: Path, *, best_epoch: int | None) -> int:
    """Apply retain_checkpoints "last" to a finished job's directory; the bytes freed.

    Pinned: keep the newest and the best epoch's (best_epoch is 0-based, as in `best`;
    the pinned file names count epochs completed). Rolling: the newest only."""
    freed = 0
    pinned_dir = checkpoint_dir / PINNED_DIR
    pinned = sorted(
        (int(m.group(1)), p) for p in _files(pinned_dir) if (m := _PINNED.match(p.name)) is not None
    )
    keep = {pinned[-1][0]} if pinned else set()
    if best_epoch is not None:
        keep.add(best_epoch + 1)
    for epoch, p in pinned:
        if epoch not in keep:
            freed += _unlink(p)
    rolling = sorted(
        (int(m.group(1)), p)
        for p in _files(checkpoint_dir)
        if (m := _ROLLING.match(p.name)) is not None
    )
    for _, p in rolling[:-1]:
        freed += _unlink(p)
    return freed


def _files(d: Path) -> list[Path]:
    try:
        return [p for p in d.iterdir() if p.is_file()]
    except OSError:  # missing (never checkpointed), or removed meanwhile
        return []


def _unlink(p: Path) -> int:
    try:
        st = p.stat()
        p.unlink()
    except OSError:
        return 0
    return st.st_size if st.st_nlink <= 1 else 0  # a hard link frees nothing yet


# ---------------------------------------------------------------------- round


@dataclass
class Report:
    """What one round did (the bench and the tests read it)."""

    expired: list[str] = field(default_factory=list)
    deleted_requested: list[str] = field(default_factory=list)
    sweeps_deleted: list[str] = field(default_factory=list)
    searches_deleted: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    workers_pruned: list[str] = field(default_factory=list)
    messages_removed: int = 0
    checkpoint_bytes_freed: int = 0
    ran: bool = True


def run_round(store: Store, settings: Settings, *, now: float | None = None) -> Report:
    """One retention round (see the module docstring); Report(ran=False) when another
    process holds the lock."""
    r = store.r
    token = secrets.token_hex(8)
    if not r.set(store.keys.retention_lock, token, nx=True, px=LOCK_MS):
        return Report(ran=False)
    try:
        now = time.time() if now is None else now
        rep = Report()
        _jobs(store, settings, now, rep)
        _leftovers(store, now, rep)
        _workers(store, settings, now, rep)
        rep.messages_removed = _messages(store)
        return rep
    finally:
        if r.get(store.keys.retention_lock) == token:
            r.delete(store.keys.retention_lock)


def _jobs(store: Store, settings: Settings, now: float, rep: Report) -> None:
    """TTL and requested deletions, and checkpoint pruning, over finished and running jobs.

    A sweep's child is never deleted alone: its sweep's scheduler would take a missing
    child for a pending one and create it again. A sweep goes as a whole (_sweep_round)
    once nothing in it can start any more and all its jobs are due. A search goes as a
    whole too (search_retention.search_round), once a job of it is due."""
    ttl_s = settings.job_ttl_days * 86400.0
    fields = ("status", "finished_at", "delete_requested", "best", "checkpoints_pruned")
    more = ("sweep_id", "search_id")
    sweeps: dict[str, bool] = {}  # sweep id -> may go (every child seen so far is due)
    searches: set[str] = set()  # searches with a due job: search_round checks the rest
    grace_s = settings.checkpoint_grace_hours * 3600.0
    for status in TERMINAL:
        ids = store.jobs_in(status)
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            with store.r.pipeline(transaction=False) as pipe:
                for jid in batch:
                    pipe.hmget(store.keys.job(jid), (*fields, *more))
                rows = pipe.execute()
            for jid, row in zip(batch, rows, strict=True):
                st, finished_at, del_req, best, pruned, sweep_id, search_id = row
                finished = st in TERMINAL
                expired = bool(ttl_s > 0 and finished_at and float(finished_at) < now - ttl_s)
                due = finished and (del_req == "1" or expired)
                if sweep_id:
                    sweeps[sweep_id] = sweeps.get(sweep_id, True) and due
                elif search_id:
                    if due:
                        searches.add(search_id)
                elif due:
                    if delete_job(store, settings, jid) == "deleted":
                        (rep.deleted_requested if del_req == "1" else rep.expired).append(jid)
                    continue
                if settings.retain_checkpoints != "last" or pruned == "1" or not finished_at:
                    continue
                if float(finished_at) > now - grace_s:
                    continue  # fork points are kept a while after the job has finished
                rep.checkpoint_bytes_freed += prune_checkpoints(
                    settings.job_dir(jid) / "checkpoints", best_epoch=_best_epoch(best)
                )
                store.flag(jid, "checkpoints_pruned", "1")  # nothing writes to it any more
    cutoff = now - ttl_s if ttl_s > 0 else 0.0
    for sweep_id, may_go in sweeps.items():
        if may_go:
            _sweep_round(store, settings, sweep_id, cutoff, rep)
    for search_id in sorted(searches):
        if search_retention.search_round(
            store, settings, search_id, lambda job: _finished_before(job, cutoff), delete_jobs
        ):
            rep.searches_deleted.append(search_id)


def _sweep_round(
    store: Store, settings: Settings, sweep_id: str, cutoff: float, rep: Report
) -> None:
    """Delete a sweep whose every job is due, unless it may still start a child."""
    from tricklab.server.sweeps import SweepNotFound, SweepStore

    ss = SweepStore(store)
    try:
        sweep = ss.get(sweep_id)
    except SweepNotFound:
        return
    requested = store.r.hget(ss.key(sweep_id), "delete_requested") == "1"
    if not requested:
        if store.r.hexists(store.keys.sweeps_open, sweep_id):
            return  # pending children: the scheduler would re-create deleted ones
        for job in ss.child_jobs(sweep).values():  # a queued one was not seen by the scan
            if job["status"] not in TERMINAL or not _finished_before(job, cutoff):
                return
    remaining = delete_sweep_jobs(store, settings, sweep)
    if not remaining and ss.delete_record(sweep_id) == "deleted":
        rep.sweeps_deleted.append(sweep_id)


def _finished_before(job: dict[str, Any], cutoff: float) -> bool:
    """Whether a decoded record (finished_at as ISO text) finished before unix time cutoff."""
    raw = job.get("finished_at")
    if not raw:
        return False
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp() < cutoff


def delete_jobs(store: Store, settings: Settings, job_ids: list[str], tenant: str) -> list[str]:
    """Delete each finished job of a sweep or search; the ids of those not finished yet."""
    return [
        j for j in job_ids if delete_job(store, settings, j, tenant) not in ("deleted", "missing")
    ]


def delete_sweep_jobs(store: Store, settings: Settings, sweep: dict[str, Any]) -> list[str]:
    """Delete every finished child of a sweep; the ids of those not finished yet."""
    return delete_jobs(store, settings, [c["job_id"] for c in sweep["children"]], sweep["tenant"])


def _best_epoch(raw: str | None) -> int | None:
    try:
        best = json.loads(raw) if raw else None
    except ValueError:
        return None
    epoch = best.get("epoch") if isinstance(best, dict) else None
    return epoch if isinstance(epoch, int) else None


def _leftovers(store: Store, now: float, rep: Report) -> None:
    """Delete again what a worker wrote after its job was deleted; forget old deletions."""
    k = store.keys
    recent = store.r.zrangebyscore(k.deleted_jobs, now - DELETED_GRACE_S, "+inf")
    for jid in recent:
        names = store.r.smembers(k.series_names(k.job_series(jid)))
        if store.r.exists(k.job(jid), *k.job_data_keys(jid, names)):
            store.delete_job(jid, force=True)
            rep.leftovers.append(jid)
    store.r.zremrangebyscore(k.deleted_jobs, "-inf", f"({now - DELETED_GRACE_S}")


def _workers(store: Store, settings: Settings, now: float, rep: Report) -> None:
    cutoff = now - settings.worker_prune_after * settings.worker_ttl_s
    k = store.keys
    stale = store.r.zrangebyscore(k.workers, "-inf", f"({cutoff}")
    if stale:
        with store.r.pipeline(transaction=True) as pipe:
            pipe.zrem(k.workers, *stale)
            pipe.delete(*[k.worker(n) for n in stale])
            pipe.execute()
        rep.workers_pruned = list(stale)


def _messages(store: Store) -> int:
    """Remove queued broker messages whose job is gone or no longer queued.

    A job's record is written before its message is published, so a message whose job
    is missing or finished can never start anything: the claim would refuse it. A job
    that is queued again (preempted, reaped) keeps its messages."""
    removed = 0
    for q in QUEUES:
        for suffix in _PRIORITY_SUFFIXES:
            key = q + suffix
            msgs = store.r.lrange(key, 0, -1)
            ids = {m: _JOB_ID.findall(m) for m in msgs if TRAIN_TASK in m}
            wanted = sorted({i for found in ids.values() for i in found})
            if not wanted:
                continue
            with store.r.pipeline(transaction=False) as pipe:
                for jid in wanted:
                    pipe.hget(store.keys.job(jid), "status")
                status = dict(zip(wanted, pipe.execute(), strict=True))
            for m, found in ids.items():
                if len(set(found)) == 1 and status[found[0]] in (None, *TERMINAL):
                    removed += int(store.r.lrem(key, 1, m))
    return removed


# --------------------------------------------------------------- background


def start_background(store: Store, settings: Settings) -> threading.Event | None:
    """Run a round every settings.retention_interval_s in a daemon thread (the API calls
    it at startup); set the returned event to stop it. None when the interval is 0."""
    interval = settings.retention_interval_s
    if interval <= 0:
        return None
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                rep = run_round(store, settings)
            except Exception:  # Redis down, a file in use: the next round tries again
                log.exception("retention round failed")
                continue
            if rep.ran and (rep.expired or rep.deleted_requested or rep.workers_pruned):
                log.info(
                    "retention: %d expired, %d deleted on request, %d workers pruned, "
                    "%d messages removed, %d checkpoint bytes freed",
                    len(rep.expired),
                    len(rep.deleted_requested),
                    len(rep.workers_pruned),
                    rep.messages_removed,
                    rep.checkpoint_bytes_freed,
                )

    threading.Thread(target=loop, name="retention", daemon=True).start()
    return stop


def _main(argv: list[str] | None = None) -> int:
    """`python -m tricklab.server.retention`: one round now, with the environment's settings."""
    from tricklab.server.connection import connect
    from tricklab.settings import get_settings

    s = get_settings()
    store = Store(connect(s.redis_url), s.key_prefix, s.events_maxlen)
    rep = run_round(store, s)
    print(json.dumps(rep.__dict__, default=list))
    return 0 if rep.ran else 1


if __name__ == "__main__":
    raise SystemExit(_main())
