"""Reconciler: re-publish queued jobs whose broker message was lost; advance open sweeps.

The job record is the truth and the broker message only a wake-up call. A message
can be lost while its record survives: the API wrote the record and then
`send_task` failed, or Redis acknowledged the publish and died before the AOF
fsync. Every worker's heartbeat loop calls `reconcile`; a lock lets one of them
scan per round. A queued job that no broker queue list mentions on scans at least
`reconcile_after_s` apart is published again. A duplicate message is harmless: the
claim is fenced (tricklab.server.store), so a second delivery is a no-op.

The same round steps every sweep that still has pending children
(tricklab.server.sweep_scheduler.advance_open): the worker's follow-ups start the next
child when a job finishes, but a quota slot can also free up with no worker involved
(a queued job cancelled through the API), and a follow-up can fail. Reads never do it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from tricklab.server import sweep_scheduler
from tricklab.server.store import Store
from tricklab.server.submit import celery_enqueue

log = logging.getLogger(__name__)

# kombu's Redis transport keeps priority levels 3, 6, 9 of queue q in "q\x06\x16<n>".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _broker_text(store: Store, queues: set[str]) -> str:
    """Every waiting message of these queues, concatenated (job ids are unique strings)."""
    with store.r.pipeline(transaction=False) as pipe:
        for q in sorted(queues):
            for suffix in _PRIORITY_SUFFIXES:
                pipe.lrange(q + suffix, 0, -1)
        lists = pipe.execute()
    return "\n".join(m for msgs in lists for m in msgs)


def reconcile(store: Store, app: Any, *, after_s: float, lock_s: float, owner: str) -> list[str]:
    """One round; returns the ids published again. `app`: the worker's Celery app."""
    if not store.r.set(store.keys.reconcile_lock, owner, nx=True, px=max(100, int(lock_s * 1000))):
        return []
    enqueue = celery_enqueue(app)
    missing_key = store.keys.reconcile_missing
    now = time.time()
    ids = store.queued_jobs()
    jobs = store.get_jobs(ids) if ids else []
    text = _broker_text(store, {j.get("queue") or "cpu" for j in jobs}) if jobs else ""
    seen = store.r.hgetall(missing_key)
    published, absent = [], set()
    for job in jobs:
        jid = job["id"]
        if job["status"] != "queued" or jid in text:
            continue
        absent.add(jid)
        since = float(seen.get(jid) or 0)
        if not since:
            store.r.hset(missing_key, jid, f"{now:.3f}")
        elif now - since >= after_s:
            enqueue(jid, job.get("queue") or "cpu")
            store.r.hdel(missing_key, jid)
            absent.discard(jid)
            published.append(jid)
            log.warning(
                "job %s: queued but not in the broker for %.0fs; re-published", jid, now - since
            )
    stale = [jid for jid in seen if jid not in absent]
    if stale:
        store.r.hdel(missing_key, *stale)
    sweep_scheduler.advance_open(store, enqueue)
    return published
