"""Service-wide numbers kept in Redis, for GET /metrics.

Gauges are read on demand from keys that exist anyway: the per-tenant status indexes
(ZCARD), the broker's queue lists (LLEN), the workers heartbeat zset, and the progress
of running jobs. The one thing written only for metrics is the job-duration histogram:
a worker adds each job it finishes to cumulative bucket counters (one Lua call per job),
so every API process reports the same global counts and nothing is re-scanned.

The histogram is one hash per status (keyspace: job_seconds): le bucket -> cumulative
count, plus "count" and "sum".
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from tricklab.contract import QUEUES, STATUSES, JobStatus
from tricklab.server import scripts
from tricklab.server.store import Store

log = logging.getLogger(__name__)

# Job run time (started_at -> finished_at, over all attempts): seconds to a day.
JOB_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
# kombu's Redis transport: priority p > 0 lives in the list "{queue}\x06\x16{p}".
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_SEP = "\x06\x16"
TENANT_RESCAN_S = 60.0


def queue_lists(queue: str) -> list[str]:
    return [queue if p == 0 else f"{queue}{KOMBU_SEP}{p}" for p in KOMBU_PRIORITY_STEPS]


def job_finished(store: Store, job_id: str) -> None:
    """Count a job that just reached its terminal status into the duration histogram.

    Call once, right after a successful (un-fenced) Store.finish.
    """
    script = getattr(store, "_tl_observe", None)
    if script is None:
        script = scripts.register(store.r, "metrics_observe")
        store._tl_observe = script  # type: ignore[attr-defined]
    keys = [store.keys.job(job_id), *(store.keys.job_seconds(s) for s in STATUSES)]
    try:
        script(keys=keys, args=[str(b) for b in JOB_SECONDS_BUCKETS])
    except redis.RedisError:  # a metric lost to a Redis blip must not fail the job's wrap-up
        log.warning("job %s: could not record its duration metric", job_id, exc_info=True)


@dataclass
class Histogram:
    buckets: list[tuple[str, int]]  # (le, cumulative count), "+Inf" last
    count: int
    sum: float


@dataclass
class Snapshot:
    jobs: dict[str, int]
    queue_depth: dict[str, int]
    unacked: int
    workers_alive: int
    samples_per_second: dict[str, float]  # queue -> sum over running jobs
    running_reporting: int
    job_seconds: dict[str, Histogram] = field(default_factory=dict)


class Collector:
    """Reads a Snapshot in two pipelined round trips (plus a tenant SCAN once a minute)."""

    def __init__(self, store: Store, worker_ttl_s: float) -> None:
        self.store = store
        self.worker_ttl_s = worker_ttl_s
        self._tenants: list[str] = []
        self._tenants_at = 0.0

    def tenants(self) -> list[str]:
        """Tenants that have jobs: found by SCAN, cached; a new tenant shows within a minute."""
        now = time.monotonic()
        if now - self._tenants_at > TENANT_RESCAN_S or not self._tenants:
            keys = self.store.keys
            found = {"default"}
            for key in self.store.r.scan_iter(match=keys.jobs_pattern(), count=1000):
                found.add(keys.tenant_of_jobs_index(key))
            self._tenants = sorted(found)
            self._tenants_at = now
        return self._tenants

    def collect(self) -> Snapshot:
        st = self.store
        tenants = self.tenants()
        with st.r.pipeline(transaction=False) as pipe:
            for t in tenants:
                for s in STATUSES:
                    pipe.zcard(st.keys.jobs(t, s))
            for q in QUEUES:
                for name in queue_lists(q):
                    pipe.llen(name)
            pipe.hlen("unacked")  # kombu's own key: deliveries not yet acked
            pipe.zcount(st.keys.workers, time.time() - self.worker_ttl_s, "+inf")
            for t in tenants:
                pipe.zrange(st.keys.jobs(t, JobStatus.RUNNING), 0, -1)
            for s in STATUSES:
                pipe.hgetall(st.keys.job_seconds(s))
            res = pipe.execute()
        it = iter(res)
        jobs = dict.fromkeys(STATUSES, 0)
        for _t in tenants:
            for s in STATUSES:
                jobs[s] += int(next(it))
        depth = {q: sum(int(next(it)) for _ in queue_lists(q)) for q in QUEUES}
        unacked = int(next(it))
        alive = int(next(it))
        running: list[str] = []
        for _t in tenants:
            running.extend(next(it))
        job_seconds = {s: _histogram(next(it)) for s in STATUSES}
        sps, reporting = self._throughput(running)
        return Snapshot(jobs, depth, unacked, alive, sps, reporting, job_seconds)

    def _throughput(self, running: list[str]) -> tuple[dict[str, float], int]:
        """Sum of the latest samples/s that each running job reported, per queue."""
        out = dict.fromkeys(QUEUES, 0.0)
        if not running:
            return out, 0
        with self.store.r.pipeline(transaction=False) as pipe:
            for jid in running:
                pipe.hmget(self.store.job_key(jid), "progress", "queue")
            rows = pipe.execute()
        reporting = 0
        for progress, queue in rows:
            try:
                v = float((json.loads(progress or "null") or {}).get("samples_per_second") or 0)
            except (TypeError, ValueError):
                continue
            if v > 0:
                reporting += 1
                q = queue or "cpu"
                out[q] = out.get(q, 0.0) + v
        return out, reporting


def _histogram(h: dict[str, Any]) -> Histogram:
    les = [str(b) for b in JOB_SECONDS_BUCKETS] + ["+Inf"]
    return Histogram(
        buckets=[(le, int(h.get(le, 0))) for le in les],
        count=int(h.get("count", 0)),
        sum=float(h.get("sum", 0.0)),
    )
