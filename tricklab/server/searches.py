"""Search records in Redis: create, read, list, cancel, the driver's lock and wake-ups.

A search record is one hash (keyspace: search): tenant, name, created_at, the request,
the creator's limits, `phase` (search → confirm → done), cancelled, error, and two JSON
lists written only under the search's lock by the driver (api/search_driver.py):

    trials   [{number, job_id, params, optuna, value, told, rejected}] in sampling order
    confirm  [{rank, number, seed, job_id}]

The payload hash (keyspace: search_payload) holds what creating each trial's or confirm
run's job needs ({spec, extra, queue}), written before the job is, so a driver that dies
between the two leaves a job that the next step creates (never one created twice: a job
whose record exists is not created again). The sampler's state is not stored: each step
rebuilds an in-memory Optuna study from `trials` (tricklab's record is the truth).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from tricklab.server import scripts
from tricklab.server.records import iso, new_id
from tricklab.server.store import Store

LOCK_TTL_MS = 60_000
PHASES = ("search", "confirm", "done")


class SearchNotFound(KeyError):
    pass


class SearchStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.r = store.r
        self.keys = store.keys
        self._release = scripts.register(self.r, "delete_if_equal")

    def create(
        self, *, tenant: str, request: dict[str, Any], limits: dict[str, Any], search_id: str = ""
    ) -> str:
        search_id = search_id or new_id("q")
        record = {
            "id": search_id,
            "tenant": tenant,
            "name": request.get("name") or "",
            "created_at": f"{time.time():.6f}",
            "request": json.dumps(request),
            "limits": json.dumps(limits),
            "phase": "search",
            "cancelled": "0",
            "error": "",
            "trials": "[]",
            "confirm": "[]",
            "rungs": "{}",
        }
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.searches_open, search_id, tenant)
            pipe.hset(self.keys.search(search_id), mapping=record)
            pipe.zadd(self.keys.searches(tenant), {search_id: 0})
            pipe.execute()
        return search_id

    def get(self, search_id: str, tenant: str | None = None) -> dict[str, Any]:
        h = self.r.hgetall(self.keys.search(search_id))
        if not h or (tenant is not None and h.get("tenant") != tenant):
            raise SearchNotFound(search_id)
        return {
            "id": h["id"],
            "tenant": h["tenant"],
            "name": h.get("name") or "",
            "created_at": iso(h.get("created_at")),
            "request": json.loads(h["request"]),
            "limits": json.loads(h.get("limits") or "{}"),
            "phase": h.get("phase") or "search",
            "cancelled": h.get("cancelled") == "1",
            "error": h.get("error") or None,
            "trials": json.loads(h.get("trials") or "[]"),
            "confirm": json.loads(h.get("confirm") or "[]"),
            "importance": json.loads(h.get("importance") or "{}") or None,
            "rungs": json.loads(h.get("rungs") or "{}"),
            "finished_at": iso(h.get("finished_at")),
        }

    def list_searches(
        self, tenant: str, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        hi = f"({cursor}" if cursor else "+"
        ids = self.r.zrevrangebylex(self.keys.searches(tenant), hi, "-", start=0, num=limit + 1)
        more = len(ids) > limit
        out = []
        for i in ids[:limit]:
            try:
                out.append(self.get(i, tenant))
            except SearchNotFound:
                continue
        return out, (ids[limit - 1] if more else None)

    def save(self, search_id: str, **fields: Any) -> None:
        """Write driver state (trials, confirm, phase, error); call it under the lock."""
        enc = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        self.r.hset(self.keys.search(search_id), mapping=enc)

    def put_payload(self, search_id: str, job_id: str, payload: dict[str, Any]) -> None:
        self.r.hset(self.keys.search_payload(search_id), job_id, json.dumps(payload))

    def payload(self, search_id: str, job_id: str) -> dict[str, Any] | None:
        raw = self.r.hget(self.keys.search_payload(search_id), job_id)
        return json.loads(raw) if raw else None

    def job_ids(self, search: dict[str, Any]) -> list[str]:
        """Every job of the search: trials (with ASHA: each segment and cool-down), confirm runs."""
        ids: list[str] = []
        for t in search["trials"]:
            if t.get("job_id"):
                ids.append(t["job_id"])
            ids += [s["job_id"] for s in t.get("segments", [])[1:]]
            ids += list((t.get("cooldowns") or {}).values())
        return ids + [c["job_id"] for c in search["confirm"]]

    def jobs(self, search: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """job_id → record for the search's jobs that exist."""
        ids = self.job_ids(search)
        return {j["id"]: j for j in self.store.get_jobs(ids)} if ids else {}

    # ------------------------------------------------------------ scheduling
    def acquire(self, search_id: str, wait_s: float = 0.0) -> str | None:
        token = secrets.token_hex(8)
        deadline = time.monotonic() + wait_s
        while True:
            if self.r.set(self.keys.search_lock(search_id), token, nx=True, px=LOCK_TTL_MS):
                return token
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def unlock(self, search_id: str, token: str) -> None:
        self._release(keys=[self.keys.search_lock(search_id)], args=[token])

    def wake(self, search_id: str) -> None:
        """Ask the driver to step this search soon (a trial finished)."""
        self.r.rpush(self.keys.search_wakeups, search_id)

    def open_searches(self) -> dict[str, str]:
        return self.r.hgetall(self.keys.searches_open)

    def delete_record(self, search_id: str, tenant: str) -> bool:
        """Remove the search's own keys (its jobs are deleted before); False when missing."""
        key = self.keys.search(search_id)
        if self.r.hget(key, "tenant") != tenant:
            return False
        with self.r.pipeline(transaction=True) as pipe:
            pipe.unlink(key, self.keys.search_payload(search_id), self.keys.search_lock(search_id))
            pipe.hdel(self.keys.searches_open, search_id)
            pipe.zrem(self.keys.searches(tenant), search_id)
            res = pipe.execute()
        return bool(res[0])

    def close(self, search_id: str) -> None:
        self.r.hdel(self.keys.searches_open, search_id)
