"""Reconciler: re-publish queued jobs whose broker message was lost; advance open sweeps.

The job record is the truth and the broker message only a wake-up call. A message
can be lost while its record survives: the API wrote the record and then
`send_task` failed, or Redis acknowledged the publish and died before the AOF
fsync. Every worker's heartbeat loop calls `reconcile`; a lock lets one of them
scan per round. A queued job that no broker queue list mentions on scans at least
`reconcile_after_s` apart is published again. A duplicate message is harmless: the
claim is fenced (tricklab.server.store), so a second delivery is a no-op.

A round is linear in the number of queued jobs and waiting messages, in a fixed number
of round trips: the queue lists are read once (pipelined) into a set of the job ids
they carry, only the queued jobs they do not name are read (status and queue, one
pipelined HMGET, not whole records), and the sightings are updated in one pipeline.

The same round steps every sweep that still has pending children
(tricklab.server.sweep_scheduler.advance_open): the worker's follow-ups start the next
child when a job finishes, but a quota slot can also free up with no worker involved
(a queued job cancelled through the API), and a follow-up can fail. Reads never do it.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from tricklab.contract import QUEUES, TRAIN_TASK
from tricklab.server import sweep_scheduler
from tricklab.server.store import Store
from tricklab.server.submit import celery_enqueue
from tricklab.server.telemetry import queue_lists

log = logging.getLogger(__name__)


_ARGSREPR = '"argsrepr": "'


def message_job_id(raw: str | bytes) -> str | None:
    """The job id a waiting TRAIN_TASK message carries (Celery protocol 2 on kombu's
    Redis transport), or None for any other message."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    # Fast path, no JSON parse: kombu writes headers.argsrepr as "['<id>']" (the
    # job id has no quote); at 10,000 waiting messages parsing each costs ~100 ms.
    i = text.find(_ARGSREPR)
    if i >= 0 and f'"task": "{TRAIN_TASK}"' in text:
        start = i + len(_ARGSREPR)
        end = text.find('"', start)
        shown = text[start:end]
        if end > 0 and shown[:2] == "['" and shown[-2:] == "']" and "'" not in shown[2:-2]:
            return shown[2:-2] or None
    try:
        msg = json.loads(text)
        headers = msg.get("headers") or {}
        if headers.get("task") != TRAIN_TASK:
            return None
        args = json.loads(base64.b64decode(msg["body"]))[0]
        return args[0] if args and isinstance(args[0], str) else None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def broker_job_ids(store: Store, queues: Iterable[str]) -> set[str]:
    """The ids of every job with a message waiting in these queues (one round trip)."""
    with store.r.pipeline(transaction=False) as pipe:
        for q in sorted(set(queues)):
            for name in queue_lists(q):
                pipe.lrange(name, 0, -1)
        lists = pipe.execute()
    ids = set()
    for msgs in lists:
        for m in msgs:
            jid = message_job_id(m)
            if jid is not None:
                ids.add(jid)
    return ids


def _queued(store: Store, ids: list[str]) -> list[tuple[str, str]]:
    """(id, queue) of the jobs among `ids` that are still queued."""
    if not ids:
        return []
    with store.r.pipeline(transaction=False) as pipe:
        for jid in ids:
            pipe.hmget(store.job_key(jid), "status", "queue")
        rows = pipe.execute()
    return [
        (jid, queue or "cpu")
        for jid, (status, queue) in zip(ids, rows, strict=True)
        if status == "queued"
    ]


def missing_from_broker(store: Store) -> list[tuple[str, str]]:
    """(id, queue) of the queued jobs that no waiting message names.

    The status index says which jobs are queued; only the few that the broker's lists
    do not name are read (status and queue), so a round costs one pass over the lists.
    """
    ids = store.queued_jobs()
    if not ids:
        return []
    in_broker = broker_job_ids(store, QUEUES)
    jobs = _queued(store, [jid for jid in ids if jid not in in_broker])
    other = {q for _, q in jobs} - set(QUEUES)  # a queue this version does not know
    if other:
        in_broker |= broker_job_ids(store, other)
    return [(jid, q) for jid, q in jobs if jid not in in_broker]


def reconcile(store: Store, app: Any, *, after_s: float, lock_s: float, owner: str) -> list[str]:
    """One round; returns the ids published again. `app`: the worker's Celery app."""
    if not store.r.set(store.keys.reconcile_lock, owner, nx=True, px=max(100, int(lock_s * 1000))):
        return []
    enqueue = celery_enqueue(app)
    missing_key = store.keys.reconcile_missing
    now = time.time()
    jobs = missing_from_broker(store)
    seen = store.r.hgetall(missing_key)
    published: list[str] = []
    absent: set[str] = set()
    first_seen: dict[Any, Any] = {}  # redis-py types mapping= invariantly
    for jid, queue in jobs:
        since = float(seen.get(jid) or 0)
        if not since:
            absent.add(jid)
            first_seen[jid] = f"{now:.3f}"
        elif now - since >= after_s:
            enqueue(jid, queue)
            published.append(jid)
            log.warning(
                "job %s: queued but not in the broker for %.0fs; re-published", jid, now - since
            )
        else:
            absent.add(jid)
    # sightings of jobs that were found, published or are no longer queued
    stale = [jid for jid in seen if jid not in absent]
    if first_seen or stale:
        with store.r.pipeline(transaction=False) as pipe:
            if first_seen:
                pipe.hset(missing_key, mapping=first_seen)
            if stale:
                pipe.hdel(missing_key, *stale)
            pipe.execute()
    sweep_scheduler.advance_open(store, enqueue)
    return published
