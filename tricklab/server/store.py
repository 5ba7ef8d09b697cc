"""Job records in Redis and their status machine.

Key names come from tricklab.server.keyspace; the status changes run as the Lua scripts
lua/job_*.lua, which get every key they touch through KEYS.

Status moves only forward: queued -> running -> succeeded | failed | cancelled, except
that a running job whose worker died or was preempted goes back to queued. Every write
a worker makes is fenced on the attempt number it claimed, in a Lua script, so a late
or duplicate worker can neither overwrite a newer attempt nor resurrect a finished job.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

import redis

from tricklab.contract import TERMINAL, JobStatus
from tricklab.server import scripts
from tricklab.server.keyspace import Keyspace
from tricklab.server.outcomes import (
    CLAIM_MISSING,
    CLAIM_REFUSED,
    CREATED,
    FINISHED,
    OVER_QUOTA,
    Beat,
    JobNotFound,
    QuotaExceeded,
    Requeued,
)
from tricklab.server.records import decode, encode_fields, new_id, new_record
from tricklab.server.workers import Workers

__all__ = ["Store"]


_TENANT_CACHE = 10_000  # job id -> tenant (never changes), to name the index keys


class Store:
    """Typed access to job records. One instance per process; safe across threads."""

    def __init__(self, r: redis.Redis, prefix: str = "tl", events_maxlen: int = 5000) -> None:
        self.r = r
        self.p = prefix
        self.keys = Keyspace(prefix)
        self.maxlen = events_maxlen
        self.workers = Workers(r, self.keys)
        self._tenants: OrderedDict[str, str] = OrderedDict()
        self._create = scripts.register(r, "job_create")
        self._claim = scripts.register(r, "job_claim")
        self._heartbeat = scripts.register(r, "job_heartbeat")
        self._finish = scripts.register(r, "job_finish")
        self._requeue = scripts.register(r, "job_requeue")
        self._cancel = scripts.register(r, "job_cancel")
        self._append_child = scripts.register(r, "job_append_child")
        self._delete = scripts.register(r, "job_delete")
        self._flag = scripts.register(r, "job_flag")

    # ------------------------------------------------------------------ keys
    def job_key(self, job_id: str) -> str:
        return self.keys.job(job_id)

    def series_prefix(self, job_id: str) -> str:
        return self.keys.job_series(job_id)

    def _machine_keys(self, job_id: str, tenant: str) -> list[str]:
        """KEYS of the status-machine scripts (see lua/job_lib.lua)."""
        k = self.keys
        return [
            k.job(job_id),
            k.job_events(job_id),
            k.all_events,
            *k.job_indexes(tenant),
            k.jobs(tenant),
        ]

    def _tenant_of(self, job_id: str) -> str | None:
        """The job's tenant (immutable, so cached), None when the job does not exist."""
        tenant = self._tenants.get(job_id)
        if tenant is None:
            tenant = self.r.hget(self.keys.job(job_id), "tenant")
            if tenant is None:
                return None
            self._remember(job_id, tenant)
        return tenant

    def _remember(self, job_id: str, tenant: str) -> None:
        self._tenants[job_id] = tenant
        if len(self._tenants) > _TENANT_CACHE:
            self._tenants.popitem(last=False)

    # ----------------------------------------------------------------- create
    def create_job(
        self,
        spec: dict[str, Any],
        *,
        tenant: str = "default",
        queue: str = "cpu",
        extra: dict[str, Any] | None = None,
        job_id: str | None = None,
        max_active: int | None = None,
    ) -> dict[str, Any]:
        """Write a queued job record (atomically, one round trip) and return it; the caller
        enqueues after. With max_active, QuotaExceeded when the tenant's queued + running
        jobs are already at it — checked in the same script, so racing requests cannot
        both slip under the limit."""
        job_id = job_id or new_id()
        record = new_record(job_id, tenant, spec, queue, now=f"{time.time():.6f}", extra=extra)
        ev = json.dumps({"id": job_id, "status": JobStatus.QUEUED, "attempts": 0})
        pairs = [x for kv in record.items() for x in kv]
        res = self._create(
            keys=self._machine_keys(job_id, tenant),
            args=[job_id, max_active or 0, self.maxlen, ev, *pairs],
        )
        if res[0] == OVER_QUOTA:
            raise QuotaExceeded(int(res[1]), int(max_active or 0))
        assert res[0] == CREATED, res
        self._remember(job_id, tenant)
        return decode(record)

    # ------------------------------------------------------------------- read
    def get_job(self, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        """The job record; JobNotFound when missing or owned by another tenant."""
        h = self.r.hgetall(self.keys.job(job_id))
        if not h or (tenant is not None and h.get("tenant") != tenant):
            raise JobNotFound(job_id)
        return decode(h)

    async def aget_job(self, ar: Any, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        """get_job over a redis.asyncio client (decode_responses=True), for async routes."""
        h = await ar.hgetall(self.keys.job(job_id))
        if not h or (tenant is not None and h.get("tenant") != tenant):
            raise JobNotFound(job_id)
        return decode(h)

    def get_jobs(self, ids: list[str]) -> list[dict[str, Any]]:
        with self.r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(self.keys.job(i))
            rows = pipe.execute()
        return [decode(h) for h in rows if h]

    def list_jobs(
        self,
        *,
        tenant: str = "default",
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first. `cursor` is the last id of the previous page; returns (jobs, next_cursor)."""
        hi = f"({cursor}" if cursor else "+"
        ids = self.r.zrevrangebylex(self.keys.jobs(tenant, status), hi, "-", start=0, num=limit + 1)
        more = len(ids) > limit
        ids = ids[:limit]
        jobs = self.get_jobs(ids)
        return jobs, (ids[-1] if more and ids else None)

    def count_jobs(self, *, tenant: str = "default", status: str | None = None) -> int:
        return int(self.r.zcard(self.keys.jobs(tenant, status)))

    # --------------------------------------------------------- worker writes
    def claim(
        self, job_id: str, worker: str, *, lease_s: float, max_attempts: int
    ) -> tuple[int, str | None]:
        """Take a queued job (or one whose lease expired). (attempt, None) or (0, current status)."""
        tenant = self._tenant_of(job_id)
        if tenant is None:
            raise JobNotFound(job_id)
        now = time.time()
        res = self._claim(
            keys=self._machine_keys(job_id, tenant),
            args=[job_id, worker, f"{now:.6f}", f"{now + lease_s:.6f}", max_attempts, self.maxlen],
        )
        if res[0] == CLAIM_MISSING:
            raise JobNotFound(job_id)
        if res[0] == CLAIM_REFUSED:
            return 0, res[1]
        return int(res[0]), None

    def heartbeat(
        self,
        job_id: str,
        attempt: int,
        *,
        lease_s: float,
        progress: dict | None = None,
        metrics: dict | None = None,
        best: dict | None = None,
        pipe: redis.client.Pipeline | None = None,
    ) -> Any:
        """Renew the lease and write progress; a Beat (FENCED, GO_ON or CANCEL).

        With `pipe`, the call is queued on it (its result comes from pipe.execute(), a
        plain int: wrap it in Beat()) as EVAL with the script's text, not EVALSHA: in a
        MULTI/EXEC a NOSCRIPT (a restarted or flushed Redis) would fail that command alone
        while the rest of the transaction applies, which redis-py prevents by sending
        SCRIPT EXISTS before every such pipeline, one more round trip each. EVAL cannot
        miss; it costs the script's ~2 KB per call (Redis caches it by its SHA1).
        """
        keys = [self.keys.job(job_id), self.keys.job_events(job_id)]
        args = [
            attempt,
            f"{time.time() + lease_s:.6f}",
            json.dumps(progress) if progress is not None else "",
            json.dumps(metrics) if metrics is not None else "",
            json.dumps(best) if best is not None else "",
            self.maxlen,
        ]
        if pipe is not None:
            return pipe.eval(self._heartbeat.script, len(keys), *keys, *args)
        return Beat(int(self._heartbeat(keys=keys, args=args)))

    def finish(
        self,
        job_id: str,
        attempt: int,
        status: str,
        *,
        error: dict | None = None,
        result: dict | None = None,
    ) -> bool:
        """Set a terminal status, fenced on attempt. False when another attempt owns the job."""
        assert status in TERMINAL, status
        tenant = self._tenant_of(job_id)
        if tenant is None:
            return False
        res = self._finish(
            keys=self._machine_keys(job_id, tenant),
            args=[
                job_id,
                attempt,
                status,
                f"{time.time():.6f}",
                json.dumps(error),
                json.dumps(result) if result is not None else "",
                self.maxlen,
            ],
        )
        return res == FINISHED

    def requeue(self, job_id: str, attempt: int | None, reason: str) -> Requeued:
        """Running -> queued (preempted, or lease expired when attempt is None)."""
        tenant = self._tenant_of(job_id)
        if tenant is None:
            return Requeued.NOT_APPLICABLE
        res = self._requeue(
            keys=self._machine_keys(job_id, tenant),
            args=[
                job_id,
                "" if attempt is None else attempt,
                f"{time.time():.6f}",
                reason,
                self.maxlen,
            ],
        )
        return Requeued(int(res))

    def cancel(self, job_id: str) -> str:
        """'cancelled' (was queued), 'cancelling' (running) or the terminal status it had."""
        tenant = self._tenant_of(job_id)
        if tenant is None:
            raise JobNotFound(job_id)
        res = self._cancel(
            keys=self._machine_keys(job_id, tenant),
            args=[job_id, f"{time.time():.6f}", self.maxlen],
        )
        if res == "missing":
            raise JobNotFound(job_id)
        return res

    def delete_job(self, job_id: str, tenant: str | None = None, *, force: bool = False) -> str:
        """Drop a finished job's every Redis key and index entry, in one script
        (lua/job_delete.lua). 'deleted'; 'missing' (none, or another tenant's); or the
        status of a job that is not finished, which is left as it is (cancel it first).
        force: whatever the status (the retention round, for a late write's leftovers).
        Files on disk are tricklab.server.retention's."""
        h = self.r.hgetall(self.keys.job(job_id))
        owner = h.get("tenant") or ""
        if tenant is not None and owner != tenant:
            return "missing"
        indexes: list[str] = []
        if owner:
            indexes += [*self.keys.job_indexes(owner), self.keys.jobs(owner)]
            if h.get("spec_hash"):
                indexes.append(self.keys.reuse(owner, h["spec_hash"]))
            try:
                tags = json.loads(h.get("tags") or "[]")
            except ValueError:
                tags = []
            indexes += [self.keys.job_tag(owner, t) for t in tags if isinstance(t, str)]
        names = self.r.smembers(self.keys.series_names(self.keys.job_series(job_id)))
        res = self._delete(
            keys=[
                self.keys.job(job_id),
                self.keys.reconcile_missing,
                self.keys.deleted_jobs,
                *indexes,
                *self.keys.job_data_keys(job_id, sorted(names)),
            ],
            args=[job_id, len(indexes), f"{time.time():.6f}", tenant or "", "1" if force else "0"],
        )
        if res == "deleted":
            self._tenants.pop(job_id, None)
        return str(res)

    def flag(self, job_id: str, field: str, value: str) -> bool:
        """Set one record field if the job still exists (lua/job_flag.lua); False if not."""
        return bool(self._flag(keys=[self.keys.job(job_id)], args=[field, value]))

    def append_child(self, parent_id: str, child: dict[str, Any]) -> None:
        """Add a fork ({id, from_epoch}) to the parent's lineage.children, atomically."""
        self._append_child(keys=[self.keys.job(parent_id)], args=[json.dumps(child)])

    def set_fields(self, job_id: str, **fields: Any) -> None:
        """Write extra record fields (JSON-encoded where they are JSON fields)."""
        self.r.hset(self.keys.job(job_id), mapping=encode_fields(fields))

    def emit(
        self, job_id: str, kind: str, data: dict, pipe: redis.client.Pipeline | None = None
    ) -> None:
        target = pipe if pipe is not None else self.r
        target.xadd(
            self.keys.job_events(job_id),
            {"type": kind, "data": json.dumps(data)},
            maxlen=self.maxlen,
            approximate=True,
        )

    def jobs_in(self, status: str, tenant: str | None = None) -> list[str]:
        """Ids of the jobs in one status, of one tenant or (a SCAN, for the reaper and
        the reconciler) of all tenants."""
        if tenant is not None:
            return list(self.r.zrange(self.keys.jobs(tenant, status), 0, -1))
        ids: list[str] = []
        for key in self.r.scan_iter(match=self.keys.jobs_pattern(status), count=500):
            ids.extend(self.r.zrange(key, 0, -1))
        return ids

    def running_jobs(self, tenant: str | None = None) -> list[str]:
        return self.jobs_in(JobStatus.RUNNING, tenant)

    def queued_jobs(self) -> list[str]:
        return self.jobs_in(JobStatus.QUEUED)
