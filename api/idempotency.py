"""Idempotency-Key for creating requests (POST /jobs): one key, one job, per tenant, 24 h.

The first request claims the key with SET NX of a short-lived "pending" marker that
holds the body's hash; once the job exists the marker becomes {"state": "done",
"job_id"} for settings.idempotency_ttl_s. A retry with the same body gets the same job
(200, header Idempotent-Replayed: true; the first answer was 201). The same key with
another body is a 422 `idempotency_key_reused`; a retry while the first request is
still being handled is a 409 `idempotency_in_flight`. A request that fails releases
the key, so fixing the body and retrying works. A pending marker expires after
PENDING_TTL_S, so a crashed API process does not hold a key for a day.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import redis
from fastapi import Header, Request
from starlette.concurrency import run_in_threadpool

from api.deps import TenantDep
from api.errors import ApiError
from tricklab.server import scripts
from tricklab.server.keyspace import Keyspace

PENDING_TTL_S = 60
MAX_KEY_CHARS = 255
HEADER = "Idempotency-Key"

# Delete KEYS[1] only while it still holds our pending marker ARGV[1].


def body_hash(body: Any) -> str:
    """Hash of the validated body (so key order and whitespace do not matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class Idempotency:
    """One claimed key. `replay_id` is set when an earlier request already made the thing."""

    def __init__(self, r: redis.Redis, key: str, digest: str, ttl_s: int) -> None:
        self.r = r
        self.key = key
        self.digest = digest
        self.ttl_s = ttl_s
        self.pending = json.dumps({"state": "pending", "body": digest})
        self.replay_id: str | None = None

    @classmethod
    def begin(
        cls,
        r: redis.Redis,
        prefix: str,
        tenant: str,
        scope: str,
        idem_key: str | None,
        body: Any,
        ttl_s: int,
    ) -> Idempotency | None:
        """None without a key; else a claim (maybe a replay); 409/422 as described above."""
        if idem_key is None:
            return None
        if not idem_key or len(idem_key) > MAX_KEY_CHARS or not idem_key.isprintable():
            raise ApiError(
                422,
                "validation_error",
                f"{HEADER} must be 1-{MAX_KEY_CHARS} printable characters",
                [{"loc": ["header", HEADER], "msg": "1-255 printable characters"}],
            )
        name = hashlib.sha256(idem_key.encode()).hexdigest()
        key = Keyspace(prefix).idempotency(tenant, scope, name)
        claim = cls(r, key, body_hash(body), ttl_s)
        for _ in range(3):  # a marker may expire between SET NX and GET
            if r.set(claim.key, claim.pending, nx=True, ex=PENDING_TTL_S):
                return claim
            raw = r.get(claim.key)
            if raw is None:
                continue
            held = json.loads(raw)
            if held.get("body") != claim.digest:
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    f"this {HEADER} was already used with a different request body; "
                    "use a new key for a new request",
                    {"header": HEADER},
                )
            if held.get("state") != "done":
                raise ApiError(
                    409,
                    "idempotency_in_flight",
                    f"a request with this {HEADER} is still being processed; retry shortly",
                    {"header": HEADER},
                    {"Retry-After": "1"},
                )
            claim.replay_id = held["job_id"]
            return claim
        raise ApiError(409, "idempotency_in_flight", f"{HEADER} is contended; retry", None)

    def done(self, job_id: str) -> None:
        value = json.dumps({"state": "done", "body": self.digest, "job_id": job_id})
        self.r.set(self.key, value, ex=self.ttl_s)

    def release(self) -> None:
        """Forget a claim whose request failed (only while it is still our pending marker)."""
        try:
            scripts.register(self.r, "delete_if_equal")(keys=[self.key], args=[self.pending])
        except redis.RedisError:
            pass  # it expires after PENDING_TTL_S anyway


def idempotent(scope: str) -> Callable[..., AsyncIterator[Idempotency | None]]:
    """A dependency for a creating route: claims the Idempotency-Key header (if sent) on the
    raw JSON body and releases it when the route raises. The route answers a replay when
    `claim.replay_id` is set and calls `claim.done(new_id)` once the thing exists."""

    async def claim_key(
        request: Request,
        tenant: TenantDep,
        idempotency_key: Annotated[
            str | None,
            Header(
                min_length=1,
                max_length=MAX_KEY_CHARS,
                description="Retries with the same key and body return the same result (200), 24 h",
            ),
        ] = None,
    ) -> AsyncIterator[Idempotency | None]:
        if idempotency_key is None:
            yield None
            return
        try:
            body: Any = await request.json()
        except ValueError:
            body = (await request.body()).decode("latin-1")
        settings = request.app.state.settings
        claim = await run_in_threadpool(
            Idempotency.begin,
            request.app.state.redis,
            settings.key_prefix,
            tenant,
            scope,
            idempotency_key,
            body,
            settings.idempotency_ttl_s,
        )
        try:
            yield claim
        except BaseException:
            if claim is not None and claim.replay_id is None:
                claim.release()
            raise

    return claim_key
