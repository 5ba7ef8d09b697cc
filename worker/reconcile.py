"""Reconciler: re-publish queued jobs whose broker message was lost.

The job record is the truth and the broker message only a wake-up call. A message
can be lost while its record survives: the API wrote the record and then
`send_task` failed, or Redis acknowledged the publish and died before the AOF
fsync. Every worker's heartbeat loop calls `reconcile`; a lock lets one of them
scan per round. A queued job that no broker queue list mentions on scans at least
`reconcile_after_s` apart is published again. A duplicate message is harmless: the
claim is fenced (tricklab.server.store), so a second delivery is a no-op.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from tricklab.server.store import Store

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
    """One round; returns the ids published again."""
    if not store.r.set(
        f"{store.p}:reconcile:lock", owner, nx=True, px=max(100, int(lock_s * 1000))
    ):
        return []
    missing_key = f"{store.p}:reconcile:missing"
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
            app.send_task("tricklab.train", args=[jid], queue=job.get("queue") or "cpu")
            store.r.hdel(missing_key, jid)
            absent.discard(jid)
            published.append(jid)
            log.warning(
                "job %s: queued but not in the broker for %.0fs; re-published", jid, now - since
            )
    stale = [jid for jid in seen if jid not in absent]
    if stale:
        store.r.hdel(missing_key, *stale)
    return published
