"""Job records in Redis: the one place that knows the key layout and the status machine.

Keys (P = settings.key_prefix):
  P:job:{id}                 hash  the job record (JSON fields stored as JSON strings)
  P:job:{id}:ev              stream  the job's events (status, progress, metrics), capped
  P:job:{id}:s:*             metric series (tricklab.server.series)
  P:t:{tenant}:jobs          zset  every job id of a tenant (score 0; ids sort by time)
  P:t:{tenant}:jobs:{status} zset  the same, one per status
  P:events                   stream  status changes of all jobs (dashboards), capped
  P:workers                  zset  worker name -> last heartbeat (unix seconds)
  P:ds:{id}                  hash  uploaded dataset metadata; P:t:{tenant}:datasets set

Status moves only forward: queued -> running -> succeeded | failed | cancelled, except
that a running job whose worker died or was preempted goes back to queued. Every write
a worker makes is fenced on the attempt number it claimed, in a Lua script, so a late
or duplicate worker can neither overwrite a newer attempt nor resurrect a finished job.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import redis

TERMINAL = ("succeeded", "failed", "cancelled")
STATUSES = ("queued", "running", *TERMINAL)
JSON_FIELDS = ("spec", "error", "progress", "metrics", "best", "result", "lineage", "plan")

# Shared Lua helpers: move an id between status indexes and emit an event on both streams.
_LUA_LIB = """
local P = ARGV[1]
local function jkey(id) return P .. ':job:' .. id end
local function move(tenant, id, from, to)
  redis.call('ZREM', P .. ':t:' .. tenant .. ':jobs:' .. from, id)
  redis.call('ZADD', P .. ':t:' .. tenant .. ':jobs:' .. to, 0, id)
end
local function emit(id, kind, data, maxlen)
  redis.call('XADD', jkey(id) .. ':ev', 'MAXLEN', '~', maxlen, '*', 'type', kind, 'data', data)
  if kind == 'status' then
    redis.call('XADD', P .. ':events', 'MAXLEN', '~', maxlen, '*', 'type', kind, 'data', data)
  end
end
local function status_event(id, status, extra)
  local ev = {id = id, status = status, attempts = tonumber(redis.call('HGET', jkey(id), 'attempts'))}
  if extra then for k, v in pairs(extra) do ev[k] = v end end
  return cjson.encode(ev)
end
"""

# ARGV: P, id, tenant, max_active (0 = no limit), maxlen, event, then field/value pairs
# -> {1} created; {0, active} when the tenant already has max_active queued + running jobs
_CREATE = (
    _LUA_LIB
    + """
local id, tenant, max_active = ARGV[2], ARGV[3], tonumber(ARGV[4])
local base = P .. ':t:' .. tenant .. ':jobs'
if max_active > 0 then
  local active = redis.call('ZCARD', base .. ':queued') + redis.call('ZCARD', base .. ':running')
  if active >= max_active then return {0, active} end
end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', jkey(id), unpack(fields))
redis.call('ZADD', base, 0, id)
redis.call('ZADD', base .. ':queued', 0, id)
emit(id, 'status', ARGV[6], ARGV[5])
return {1}
"""
)

# ARGV: P, id, worker, now, lease_until, max_attempts, maxlen
# -> {attempt} on success; {0, status} when the job is not claimable; {-1} when missing
_CLAIM = (
    _LUA_LIB
    + """
local id, worker, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local k = jkey(id)
local st = redis.call('HGET', k, 'status')
if not st then return {-1} end
local tenant = redis.call('HGET', k, 'tenant')
if st == 'running' then
  local lease = tonumber(redis.call('HGET', k, 'lease_until') or '0') or 0
  if lease > now then return {0, 'running'} end
  -- the holder died without a word: end its attempt in the event stream first
  emit(id, 'status', status_event(id, 'queued', {reason = 'lease expired'}), ARGV[7])
elseif st ~= 'queued' then
  return {0, st}
end
local attempts = redis.call('HINCRBY', k, 'attempts', 1)
if attempts > tonumber(ARGV[6]) then
  local err = cjson.encode({type = 'crashed', message = 'the job crashed its worker ' .. (attempts - 1) ..
    ' times; not retrying (max_restarts)'})
  redis.call('HINCRBY', k, 'attempts', -1)
  redis.call('HSET', k, 'status', 'failed', 'finished_at', ARGV[4], 'error', err, 'worker', '')
  move(tenant, id, st, 'failed')
  emit(id, 'status', status_event(id, 'failed'), ARGV[7])
  return {0, 'failed'}
end
redis.call('HSET', k, 'status', 'running', 'worker', worker, 'lease_until', ARGV[5])
if redis.call('HGET', k, 'started_at') == '' then redis.call('HSET', k, 'started_at', ARGV[4]) end
move(tenant, id, st, 'running')
emit(id, 'status', status_event(id, 'running', {worker = worker}), ARGV[7])
return {attempts}
"""
)

# ARGV: P, id, attempt, lease_until, progress, metrics, best, maxlen
# -> 1 keep going, 2 cancel requested, -1 fenced out (another attempt owns the job)
_HEARTBEAT = (
    _LUA_LIB
    + """
local id = ARGV[2]
local k = jkey(id)
if redis.call('HGET', k, 'status') ~= 'running' or redis.call('HGET', k, 'attempts') ~= ARGV[3] then
  return -1
end
redis.call('HSET', k, 'lease_until', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', k, 'progress', ARGV[5])
  emit(id, 'progress', ARGV[5], ARGV[8])
end
if ARGV[6] ~= '' then
  redis.call('HSET', k, 'metrics', ARGV[6])
  emit(id, 'metrics', ARGV[6], ARGV[8])
end
if ARGV[7] ~= '' then redis.call('HSET', k, 'best', ARGV[7]) end
if redis.call('HGET', k, 'cancel_requested') == '1' then return 2 end
return 1
"""
)

# ARGV: P, id, attempt, status, now, error, result, maxlen -> 1 done, 0 fenced out
_FINISH = (
    _LUA_LIB
    + """
local id = ARGV[2]
local k = jkey(id)
local st = redis.call('HGET', k, 'status')
if st ~= 'running' or redis.call('HGET', k, 'attempts') ~= ARGV[3] then return 0 end
redis.call('HSET', k, 'status', ARGV[4], 'finished_at', ARGV[5], 'error', ARGV[6], 'worker', '',
  'lease_until', '')
if ARGV[7] ~= '' then redis.call('HSET', k, 'result', ARGV[7]) end
move(redis.call('HGET', k, 'tenant'), id, st, ARGV[4])
emit(id, 'status', status_event(id, ARGV[4], {error = cjson.decode(ARGV[6])}), ARGV[8])
return 1
"""
)

# ARGV: P, id, attempt ('' = any attempt whose lease expired before now), now, reason, maxlen
# -> 1 re-queued, 2 cancelled instead (cancel was pending), 0 not applicable
_REQUEUE = (
    _LUA_LIB
    + """
local id = ARGV[2]
local k = jkey(id)
local st = redis.call('HGET', k, 'status')
if st ~= 'running' then return 0 end
if ARGV[3] ~= '' then
  if redis.call('HGET', k, 'attempts') ~= ARGV[3] then return 0 end
elseif (tonumber(redis.call('HGET', k, 'lease_until') or '0') or 0) > tonumber(ARGV[4]) then
  return 0
end
local tenant = redis.call('HGET', k, 'tenant')
if redis.call('HGET', k, 'cancel_requested') == '1' then
  redis.call('HSET', k, 'status', 'cancelled', 'finished_at', ARGV[4], 'worker', '', 'lease_until', '')
  move(tenant, id, st, 'cancelled')
  emit(id, 'status', status_event(id, 'cancelled'), ARGV[6])
  return 2
end
redis.call('HSET', k, 'status', 'queued', 'worker', '', 'lease_until', '')
move(tenant, id, st, 'queued')
emit(id, 'status', status_event(id, 'queued', {reason = ARGV[5]}), ARGV[6])
return 1
"""
)

# ARGV: P, id, now, maxlen -> the status after the call: 'cancelled' (was queued),
# 'cancelling' (running: the worker stops at its next log point), else the terminal status
_CANCEL = (
    _LUA_LIB
    + """
local id = ARGV[2]
local k = jkey(id)
local st = redis.call('HGET', k, 'status')
if not st then return 'missing' end
if st == 'queued' then
  redis.call('HSET', k, 'status', 'cancelled', 'finished_at', ARGV[3], 'cancel_requested', '1')
  move(redis.call('HGET', k, 'tenant'), id, st, 'cancelled')
  emit(id, 'status', status_event(id, 'cancelled'), ARGV[4])
  return 'cancelled'
end
if st == 'running' then
  if redis.call('HGET', k, 'cancel_requested') ~= '1' then
    redis.call('HSET', k, 'cancel_requested', '1')
    emit(id, 'cancel_requested', cjson.encode({id = id}), ARGV[4])
  end
  return 'cancelling'
end
return st
"""
)


def _decode_events(res: Any) -> list[tuple[str, str, dict]]:
    out = []
    for _stream, entries in res or []:
        for eid, fields in entries:
            out.append((eid, fields["type"], json.loads(fields["data"])))
    return out


class JobNotFound(KeyError):
    pass


class QuotaExceeded(Exception):
    """create_job refused: the tenant already has `active` >= max_active queued + running jobs."""

    def __init__(self, active: int, max_active: int) -> None:
        super().__init__(f"{active} active jobs, limit {max_active}")
        self.active = active
        self.max_active = max_active


def new_id(kind: str = "j") -> str:
    """Time-sortable id: kind + 12 hex digits of unix ms + 8 random hex digits."""
    return f"{kind}{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


def iso(ts: str | float | None) -> str | None:
    if ts in (None, ""):
        return None
    return datetime.fromtimestamp(float(ts), tz=UTC).isoformat().replace("+00:00", "Z")


# Short timeouts so that a Redis outage becomes a clear 503 instead of a hang.
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "health_check_interval": 10,
}


def connect(url: str, *, decode: bool = True) -> redis.Redis:
    """A sync client: text (for Store) or bytes (decode=False, for tricklab.server.series)."""
    return redis.Redis.from_url(
        url, decode_responses=decode, retry_on_timeout=False, **CLIENT_OPTIONS
    )


def connect_async(url: str) -> Any:
    """A redis.asyncio text client, for async API routes."""
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url, decode_responses=True, **CLIENT_OPTIONS)


class Store:
    """Typed access to job records. One instance per process; safe across threads."""

    def __init__(self, r: redis.Redis, prefix: str = "tl", events_maxlen: int = 5000) -> None:
        self.r = r
        self.p = prefix
        self.maxlen = events_maxlen
        self._create = r.register_script(_CREATE)
        self._claim = r.register_script(_CLAIM)
        self._heartbeat = r.register_script(_HEARTBEAT)
        self._finish = r.register_script(_FINISH)
        self._requeue = r.register_script(_REQUEUE)
        self._cancel = r.register_script(_CANCEL)

    # ------------------------------------------------------------------ keys
    def job_key(self, job_id: str) -> str:
        return f"{self.p}:job:{job_id}"

    def events_key(self, job_id: str) -> str:
        return f"{self.p}:job:{job_id}:ev"

    def series_prefix(self, job_id: str) -> str:
        return f"{self.p}:job:{job_id}:s"

    def index_key(self, tenant: str, status: str | None = None) -> str:
        base = f"{self.p}:t:{tenant}:jobs"
        return f"{base}:{status}" if status else base

    @property
    def all_events_key(self) -> str:
        return f"{self.p}:events"

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
        now = f"{time.time():.6f}"
        record: dict[str, str] = {
            "id": job_id,
            "tenant": tenant,
            "name": spec.get("name") or "",
            "status": "queued",
            "spec": json.dumps(spec),
            "queue": queue,
            "created_at": now,
            "started_at": "",
            "finished_at": "",
            "attempts": "0",
            "error": "null",
            "progress": "null",
            "metrics": "{}",
            "best": "null",
            "result": "null",
            "lineage": "null",
            "cancel_requested": "0",
            "worker": "",
            "lease_until": "",
        }
        for k, v in (extra or {}).items():
            record[k] = json.dumps(v) if k in JSON_FIELDS or not isinstance(v, str) else v
        ev = json.dumps({"id": job_id, "status": "queued", "attempts": 0})
        pairs = [x for kv in record.items() for x in kv]
        res = self._create(args=[self.p, job_id, tenant, max_active or 0, self.maxlen, ev, *pairs])
        if res[0] == 0:
            raise QuotaExceeded(int(res[1]), int(max_active or 0))
        return self.decode(record)

    # ------------------------------------------------------------------- read
    @staticmethod
    def decode(h: dict[str, str]) -> dict[str, Any]:
        job: dict[str, Any] = dict(h)
        for f in JSON_FIELDS:
            if f in job:
                job[f] = json.loads(job[f]) if job[f] else None
        job["attempts"] = int(job.get("attempts") or 0)
        job["cancel_requested"] = job.get("cancel_requested") == "1"
        for f in ("created_at", "started_at", "finished_at"):
            job[f] = iso(job.get(f))
        job["lease_until"] = float(job["lease_until"]) if job.get("lease_until") else None
        return job

    def get_job(self, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        """The job record; JobNotFound when missing or owned by another tenant."""
        h = self.r.hgetall(self.job_key(job_id))
        if not h or (tenant is not None and h.get("tenant") != tenant):
            raise JobNotFound(job_id)
        return self.decode(h)

    async def aget_job(self, ar: Any, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        """get_job over a redis.asyncio client (decode_responses=True), for async routes."""
        h = await ar.hgetall(self.job_key(job_id))
        if not h or (tenant is not None and h.get("tenant") != tenant):
            raise JobNotFound(job_id)
        return self.decode(h)

    def get_jobs(self, ids: list[str]) -> list[dict[str, Any]]:
        with self.r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(self.job_key(i))
            rows = pipe.execute()
        return [self.decode(h) for h in rows if h]

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
        ids = self.r.zrevrangebylex(self.index_key(tenant, status), hi, "-", start=0, num=limit + 1)
        more = len(ids) > limit
        ids = ids[:limit]
        jobs = self.get_jobs(ids)
        return jobs, (ids[-1] if more and ids else None)

    def count_jobs(self, *, tenant: str = "default", status: str | None = None) -> int:
        return int(self.r.zcard(self.index_key(tenant, status)))

    # --------------------------------------------------------- worker writes
    def claim(
        self, job_id: str, worker: str, *, lease_s: float, max_attempts: int
    ) -> tuple[int, str | None]:
        """Take a queued job (or one whose lease expired). (attempt, None) or (0, current status)."""
        now = time.time()
        res = self._claim(
            args=[
                self.p,
                job_id,
                worker,
                f"{now:.6f}",
                f"{now + lease_s:.6f}",
                max_attempts,
                self.maxlen,
            ]
        )
        if res[0] == -1:
            raise JobNotFound(job_id)
        if res[0] == 0:
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
        """Renew the lease and write progress; -1 fenced out, 1 go on, 2 cancel requested.

        With `pipe`, the call is queued on it (its result comes from pipe.execute()).
        """
        args = [
            self.p,
            job_id,
            attempt,
            f"{time.time() + lease_s:.6f}",
            json.dumps(progress) if progress is not None else "",
            json.dumps(metrics) if metrics is not None else "",
            json.dumps(best) if best is not None else "",
            self.maxlen,
        ]
        return (
            self._heartbeat(args=args, client=pipe)
            if pipe is not None
            else self._heartbeat(args=args)
        )

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
        res = self._finish(
            args=[
                self.p,
                job_id,
                attempt,
                status,
                f"{time.time():.6f}",
                json.dumps(error),
                json.dumps(result) if result is not None else "",
                self.maxlen,
            ]
        )
        return res == 1

    def requeue(self, job_id: str, attempt: int | None, reason: str) -> int:
        """Running -> queued (preempted, or lease expired when attempt is None).

        1 re-queued (caller re-publishes the task), 2 cancelled instead, 0 not applicable.
        """
        return int(
            self._requeue(
                args=[
                    self.p,
                    job_id,
                    "" if attempt is None else attempt,
                    f"{time.time():.6f}",
                    reason,
                    self.maxlen,
                ]
            )
        )

    def cancel(self, job_id: str) -> str:
        res = self._cancel(args=[self.p, job_id, f"{time.time():.6f}", self.maxlen])
        if res == "missing":
            raise JobNotFound(job_id)
        return res

    def set_fields(self, job_id: str, **fields: Any) -> None:
        """Write extra record fields (JSON-encoded where they are JSON fields)."""
        enc = {
            k: json.dumps(v) if k in JSON_FIELDS or not isinstance(v, str) else v
            for k, v in fields.items()
        }
        self.r.hset(self.job_key(job_id), mapping=enc)

    def emit(
        self, job_id: str, kind: str, data: dict, pipe: redis.client.Pipeline | None = None
    ) -> None:
        target = pipe if pipe is not None else self.r
        target.xadd(
            self.events_key(job_id),
            {"type": kind, "data": json.dumps(data)},
            maxlen=self.maxlen,
            approximate=True,
        )

    # ------------------------------------------------------------------ events
    def read_events(
        self, job_id: str, last_id: str = "0-0", block_ms: int | None = None, count: int = 500
    ) -> list[tuple[str, str, dict]]:
        """Events after last_id as (event_id, type, data)."""
        res = self.r.xread({self.events_key(job_id): last_id}, count=count, block=block_ms)
        return _decode_events(res)

    async def aread_events(
        self,
        ar: Any,
        job_id: str,
        last_id: str = "0-0",
        block_ms: int | None = None,
        count: int = 500,
    ) -> list[tuple[str, str, dict]]:
        """read_events over a redis.asyncio client: a blocking read holds no thread."""
        res = await ar.xread({self.events_key(job_id): last_id}, count=count, block=block_ms)
        return _decode_events(res)

    async def ais_terminal(self, ar: Any, job_id: str) -> bool:
        return await ar.hget(self.job_key(job_id), "status") in TERMINAL

    # ----------------------------------------------------------------- workers
    def worker_heartbeat(self, name: str, info: dict | None = None) -> None:
        with self.r.pipeline(transaction=False) as pipe:
            pipe.zadd(f"{self.p}:workers", {name: time.time()})
            if info is not None:
                pipe.hset(f"{self.p}:worker:{name}", mapping={"info": json.dumps(info)})
                pipe.expire(f"{self.p}:worker:{name}", 3600)
            pipe.execute()

    def workers_alive(self, ttl_s: float) -> list[str]:
        return list(self.r.zrangebyscore(f"{self.p}:workers", time.time() - ttl_s, "+inf"))

    def worker_gone(self, name: str) -> None:
        self.r.zrem(f"{self.p}:workers", name)

    def jobs_in(self, status: str, tenant: str | None = None) -> list[str]:
        """Ids of the jobs in one status, of one tenant or (a SCAN, for the reaper and
        the reconciler) of all tenants."""
        if tenant is not None:
            return list(self.r.zrange(self.index_key(tenant, status), 0, -1))
        ids: list[str] = []
        for key in self.r.scan_iter(match=f"{self.p}:t:*:jobs:{status}", count=500):
            ids.extend(self.r.zrange(key, 0, -1))
        return ids

    def running_jobs(self, tenant: str | None = None) -> list[str]:
        return self.jobs_in("running", tenant)

    def queued_jobs(self) -> list[str]:
        return self.jobs_in("queued")
