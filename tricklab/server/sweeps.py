"""Sweep records in Redis and the scheduler step that keeps at most
`max_concurrent` of a sweep's child jobs queued or running.

Keys (P = key prefix):
  P:sweep:{id}           hash  the sweep: tenant, name, kind, created_at, max_concurrent,
                               cancelled, request (JSON), variants (JSON), children (JSON:
                               [{job_id, variant, seed}] in start order)
  P:sweep:{id}:payload   hash  job_id → {spec, extra, queue}: what create_job needs
  P:sweep:{id}:lock      string  the scheduler lock (token, expires)
  P:sweep:{id}:dirty     string  "another step was asked for while the lock was held"
  P:t:{tenant}:sweeps    zset  sweep ids (score 0; ids sort by time)

Child job ids are drawn when the sweep is created; a child is *pending* until
its job record exists. `step` creates the next pending children while fewer than
max_concurrent created children are non-terminal. It runs under a lock, and a
caller that finds the lock taken leaves a dirty mark that makes the holder run
once more before it lets go, so a finish is never lost between two steps. The
step is idempotent (a child whose record exists is never created again), so the
worker's finish path and GET /sweeps/{id} may both call it at any time.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from tricklab.server import reuse
from tricklab.server.store import TERMINAL, JobNotFound, QuotaExceeded, Store, iso, new_id

LOCK_TTL_MS = 30_000
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

Enqueue = Callable[[str, str], None]  # (job_id, queue)


class SweepNotFound(KeyError):
    pass


class SweepStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.r = store.r
        self.p = store.p
        self._release = self.r.register_script(_RELEASE)

    # ------------------------------------------------------------------ keys
    def key(self, sweep_id: str) -> str:
        return f"{self.p}:sweep:{sweep_id}"

    def index_key(self, tenant: str) -> str:
        return f"{self.p}:t:{tenant}:sweeps"

    # ---------------------------------------------------------------- create
    def create(
        self,
        *,
        tenant: str,
        name: str,
        kind: str,
        max_concurrent: int,
        request: dict[str, Any],
        variants: list[dict[str, Any]],
        children: list[dict[str, Any]],
        sweep_id: str | None = None,
        max_active_jobs: int = 0,
    ) -> str:
        """Write the sweep. children: [{variant, seed, spec, extra, queue}] in start order.

        max_active_jobs: the creator's quota of queued + running jobs (0: none); a child
        that would pass it stays pending until a later step."""
        sweep_id = sweep_id or new_id("s")
        compact, payload = [], {}
        for c in children:
            job_id = new_id()
            compact.append({"job_id": job_id, "variant": c["variant"], "seed": c["seed"]})
            payload[job_id] = json.dumps(
                {
                    "spec": c["spec"],
                    "extra": {**c["extra"], "sweep_id": sweep_id},
                    "queue": c["queue"],
                }
            )
        record = {
            "id": sweep_id,
            "tenant": tenant,
            "name": name,
            "kind": kind,
            "created_at": f"{time.time():.6f}",
            "max_concurrent": str(max_concurrent),
            "max_active_jobs": str(max_active_jobs),
            "cancelled": "0",
            "request": json.dumps(request),
            "variants": json.dumps(variants),
            "children": json.dumps(compact),
        }
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(sweep_id), mapping=record)
            pipe.hset(f"{self.key(sweep_id)}:payload", mapping=payload)
            pipe.zadd(self.index_key(tenant), {sweep_id: 0})
            pipe.execute()
        return sweep_id

    # ------------------------------------------------------------------ read
    def get(self, sweep_id: str, tenant: str | None = None) -> dict[str, Any]:
        h = self.r.hgetall(self.key(sweep_id))
        if not h or (tenant is not None and h.get("tenant") != tenant):
            raise SweepNotFound(sweep_id)
        return {
            "id": h["id"],
            "tenant": h["tenant"],
            "name": h.get("name") or "",
            "kind": h["kind"],
            "created_at": iso(h.get("created_at")),
            "max_concurrent": int(h["max_concurrent"]),
            "max_active_jobs": int(h.get("max_active_jobs") or 0),
            "cancelled": h.get("cancelled") == "1",
            "request": json.loads(h["request"]),
            "variants": json.loads(h["variants"]),
            "children": json.loads(h["children"]),
        }

    def list_sweeps(
        self, tenant: str, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        hi = f"({cursor}" if cursor else "+"
        ids = self.r.zrevrangebylex(self.index_key(tenant), hi, "-", start=0, num=limit + 1)
        more = len(ids) > limit
        ids = ids[:limit]
        out = []
        for i in ids:
            try:
                out.append(self.get(i, tenant))
            except SweepNotFound:
                continue
        return out, (ids[-1] if more and ids else None)

    def child_jobs(self, sweep: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """job_id → job record for the children that exist (pending ones are absent)."""
        ids = [c["job_id"] for c in sweep["children"]]
        return {j["id"]: j for j in self.store.get_jobs(ids)} if ids else {}

    # ------------------------------------------------------------ scheduling
    def _acquire(self, sweep_id: str, wait_s: float = 0.0) -> str | None:
        token = secrets.token_hex(8)
        deadline = time.monotonic() + wait_s
        while True:
            if self.r.set(f"{self.key(sweep_id)}:lock", token, nx=True, px=LOCK_TTL_MS):
                return token
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def _unlock(self, sweep_id: str, token: str) -> None:
        self._release(keys=[f"{self.key(sweep_id)}:lock"], args=[token])

    def step(self, sweep_id: str, enqueue: Enqueue) -> int:
        """Start pending children up to the cap; returns how many this call started."""
        dirty = f"{self.key(sweep_id)}:dirty"
        started = 0
        while True:
            self.r.set(dirty, "1", px=LOCK_TTL_MS)
            token = self._acquire(sweep_id)
            if token is None:
                return started  # the holder sees the dirty mark and runs again
            try:
                while self.r.getdel(dirty):
                    started += self._promote(sweep_id, enqueue)
            finally:
                self._unlock(sweep_id, token)
            if not self.r.exists(dirty):
                return started

    def _promote(self, sweep_id: str, enqueue: Enqueue) -> int:
        try:
            sweep = self.get(sweep_id)
        except SweepNotFound:
            return 0
        if sweep["cancelled"]:
            return 0
        jobs = self.child_jobs(sweep)
        active = sum(1 for j in jobs.values() if j["status"] not in TERMINAL)
        room = sweep["max_concurrent"] - active
        started = 0
        for c in sweep["children"]:
            if room <= 0:
                break
            if c["job_id"] in jobs:
                continue
            raw = self.r.hget(f"{self.key(sweep_id)}:payload", c["job_id"])
            if raw is None:
                continue
            p = json.loads(raw)
            try:
                self.store.create_job(
                    p["spec"],
                    tenant=sweep["tenant"],
                    queue=p["queue"],
                    extra=p["extra"],
                    job_id=c["job_id"],
                    max_active=sweep["max_active_jobs"] or None,
                )
            except QuotaExceeded:
                break  # the tenant is at its quota: the rest stay pending for a later step
            try:
                enqueue(c["job_id"], p["queue"])
            except Exception:  # noqa: BLE001 - the record stays queued; the reconciler re-publishes it
                pass
            if p["extra"].get("spec_hash"):
                reuse.register(self.store, sweep["tenant"], p["extra"]["spec_hash"], c["job_id"])
            room -= 1
            started += 1
        return started

    def cancel(self, sweep_id: str) -> list[tuple[str, str]]:
        """Mark the sweep cancelled and cancel its created children: [(job_id, outcome)]."""
        token = self._acquire(sweep_id, wait_s=10.0)
        try:
            self.r.hset(self.key(sweep_id), "cancelled", "1")
            sweep = self.get(sweep_id)
            out = []
            for job_id, job in self.child_jobs(sweep).items():
                if job["status"] in TERMINAL:
                    continue
                try:
                    out.append((job_id, self.store.cancel(job_id)))
                except JobNotFound:
                    continue
            return out
        finally:
            if token is not None:
                self._unlock(sweep_id, token)


# ------------------------------------------------------------------ status


def sweep_status(sweep: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> str:
    """queued | running | succeeded | failed | cancelled, from the children."""
    statuses = [
        jobs[c["job_id"]]["status"] if c["job_id"] in jobs else "pending" for c in sweep["children"]
    ]
    unfinished = [s for s in statuses if s not in TERMINAL]
    if sweep["cancelled"]:
        return "cancelled" if not any(s == "running" for s in unfinished) else "running"
    if unfinished:
        started = any(s not in ("queued", "pending") for s in statuses)
        return "running" if started else "queued"
    if any(s == "failed" for s in statuses):
        return "failed"
    if any(s == "cancelled" for s in statuses):
        return "cancelled"
    return "succeeded"


def counts(sweep: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> dict[str, int]:
    out = {"pending": 0, "queued": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    for c in sweep["children"]:
        j = jobs.get(c["job_id"])
        s = j["status"] if j else ("cancelled" if sweep["cancelled"] else "pending")
        out[s] = out.get(s, 0) + 1
    out["total"] = len(sweep["children"])
    return out
