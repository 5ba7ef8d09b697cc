"""Worker heartbeats: which workers are alive, and what each said about itself (its
queues and GPUs), for /readyz, the queue choice of `device: auto` jobs, /metrics, and
the `pending_reason` of a queued job that no live worker can run."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from tricklab.server.keyspace import Keyspace

log = logging.getLogger(__name__)

INFO_TTL_S = 3600  # a worker's self-description outlives its heartbeats by this much


class Workers:
    def __init__(self, r: Any, keys: Keyspace) -> None:
        self.r = r
        self.keys = keys

    def beat(self, name: str, info: dict | None = None) -> None:
        """The worker `name` is alive now (and, with info, describes itself)."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.workers, {name: time.time()})
            if info is not None:
                pipe.hset(self.keys.worker(name), mapping={"info": json.dumps(info)})
                pipe.expire(self.keys.worker(name), INFO_TTL_S)
            pipe.execute()

    def alive(self, ttl_s: float) -> list[str]:
        """Names of the workers whose last heartbeat is younger than ttl_s."""
        return list(self.r.zrangebyscore(self.keys.workers, time.time() - ttl_s, "+inf"))

    def gone(self, name: str) -> None:
        self.r.zrem(self.keys.workers, name)

    def infos(self, names: list[str]) -> list[dict[str, Any]]:
        """What each named worker said about itself ({} when it said nothing readable)."""
        if not names:
            return []
        with self.r.pipeline(transaction=False) as pipe:
            for n in names:
                pipe.hget(self.keys.worker(n), "info")
            raws = pipe.execute()
        out: list[dict[str, Any]] = []
        for raw in raws:
            try:
                info = json.loads(raw) if raw else {}
            except ValueError:
                info = {}
            out.append(info if isinstance(info, dict) else {})
        return out

    def coverage(self, ttl_s: float) -> Coverage:
        """How many live workers consume each queue (two round trips)."""
        names = self.alive(ttl_s)
        per_queue: dict[str, int] = {}
        for info in self.infos(names):
            for q in set(info.get("queues") or []):
                if isinstance(q, str):
                    per_queue[q] = per_queue.get(q, 0) + 1
        return Coverage(alive=len(names), per_queue=per_queue)


@dataclass(frozen=True)
class Coverage:
    alive: int  # live workers
    per_queue: Mapping[str, int]  # queue -> live workers that said they consume it


def reason_for(queue: str, coverage: Coverage) -> str | None:
    """Why a job queued on `queue` cannot start now, or None when a live worker serves it."""
    if coverage.per_queue.get(queue):
        return None
    if not coverage.alive:
        return f"no live worker: start one for the {queue} queue (tricklab worker)"
    served = ", ".join(sorted(coverage.per_queue)) or "no queue they reported"
    return f"no live worker serves the {queue} queue (live workers serve: {served})"


# Read time, not write time: a worker that starts or dies changes every queued job's
# reason at once, so the reason is computed from the heartbeats when a job is read.
# The heartbeats change in seconds, so one reading serves a process for COVERAGE_CACHE_S.
COVERAGE_CACHE_S = 2.0
_cache: dict[tuple[int, str], tuple[float, Coverage]] = {}
_cache_lock = threading.Lock()
_clients: dict[tuple[int, str], Any] = {}


def cached_coverage(workers: Workers, ttl_s: float) -> Coverage:
    """workers.coverage(ttl_s), read at most once per COVERAGE_CACHE_S per process and
    keyspace: what POST /jobs (choosing a queue) and every job read (its pending_reason)
    share. Raises redis errors."""
    key = (os.getpid(), workers.keys.p)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        cov = workers.coverage(ttl_s)
        _cache[key] = (now + COVERAGE_CACHE_S, cov)
        return cov


def current_coverage() -> Coverage | None:
    """This deployment's coverage (settings: redis_url, key_prefix, worker_ttl_s), cached
    (cached_coverage); None when Redis cannot be read."""
    from tricklab.server.connection import connect
    from tricklab.settings import get_settings

    s = get_settings()
    r = _clients.get((os.getpid(), s.redis_url))
    if r is None:
        r = _clients[(os.getpid(), s.redis_url)] = connect(s.redis_url)
    try:
        return cached_coverage(Workers(r, Keyspace(s.key_prefix)), s.worker_ttl_s)
    except redis.RedisError as e:
        log.warning("could not read the workers' heartbeats: %s", e)
        return None


def pending_reason(job: Mapping[str, Any]) -> str | None:
    """Why a queued job is not starting (no live worker serves its queue), else None.

    What the public job record carries as `pending_reason` (like Ray's pending-resource
    hints): a `training.device: "cuda"` job with no GPU worker says "no live worker
    serves the gpu queue" instead of staying queued with no word.
    """
    if job.get("status") != "queued":
        return None
    cov = current_coverage()
    return None if cov is None else reason_for(job.get("queue") or "cpu", cov)
