"""Sweep records in Redis: create, read, list, cancel, and the scheduler lock.

A sweep record holds tenant, name, kind, created_at, max_concurrent, cancelled, the
request, its variants and its children ([{job_id, variant, seed}] in start order); the
payload hash holds what creating each pending child needs (spec, extra, queue). Key
names are in tricklab.server.keyspace. Child job ids are drawn when the sweep is
created; a child is *pending* until its job record exists, and
tricklab.server.sweep_scheduler starts pending children as room frees up.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from tricklab.contract import TERMINAL
from tricklab.server import scripts
from tricklab.server.outcomes import JobNotFound
from tricklab.server.records import iso, new_id, new_ids
from tricklab.server.store import Store

LOCK_TTL_MS = 30_000


class SweepNotFound(KeyError):
    pass


class SweepStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.r = store.r
        self.p = store.p
        self.keys = store.keys
        self._release = scripts.register(self.r, "delete_if_equal")
        self._delete = scripts.register(self.r, "sweep_delete")

    # ------------------------------------------------------------------ keys
    def key(self, sweep_id: str) -> str:
        return self.keys.sweep(sweep_id)

    def index_key(self, tenant: str) -> str:
        return self.keys.sweeps(tenant)

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
        # ids in start order, so the jobs list (newest first) shows the children stably,
        # the last to start first
        for c, job_id in zip(children, new_ids(len(children)), strict=True):
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
            pipe.hset(self.keys.sweep_payload(sweep_id), mapping=payload)
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
    def acquire(self, sweep_id: str, wait_s: float = 0.0) -> str | None:
        """Take the sweep's scheduler lock: a token to unlock with, or None when held."""
        token = secrets.token_hex(8)
        deadline = time.monotonic() + wait_s
        while True:
            if self.r.set(self.keys.sweep_lock(sweep_id), token, nx=True, px=LOCK_TTL_MS):
                return token
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def unlock(self, sweep_id: str, token: str) -> None:
        self._release(keys=[self.keys.sweep_lock(sweep_id)], args=[token])

    def cancel(self, sweep_id: str) -> list[tuple[str, str]]:
        """Mark the sweep cancelled and cancel its created children: [(job_id, outcome)]."""
        token = self.acquire(sweep_id, wait_s=10.0)
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
                self.unlock(sweep_id, token)

    # ---------------------------------------------------------------- delete
    def delete_record(self, sweep_id: str, tenant: str | None = None) -> str:
        """Drop the sweep's own keys (lua/sweep_delete.lua), once its children are deleted
        (tricklab.server.retention.delete_sweep_jobs): 'deleted' or 'missing'."""
        k = self.keys
        owner = tenant if tenant is not None else self.r.hget(self.key(sweep_id), "tenant")
        if not owner:
            return "missing"
        keys = [
            self.key(sweep_id),
            k.sweep_payload(sweep_id),
            k.sweep_lock(sweep_id),
            k.sweep_dirty(sweep_id),
            k.sweeps_open,
            self.index_key(owner),
        ]
        return str(self._delete(keys=keys, args=[sweep_id, tenant or ""]))


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
