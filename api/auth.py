"""Who is calling: the API key (`Authorization: Bearer tl_...`), its tenant, limits and rate.

settings.auth: "required" always asks for a key; "off" never does; "auto" (the default)
asks unless the API is bound to a loopback address only. In auto mode a request that
arrived on a non-loopback local address needs a key as well, so `uvicorn --host 0.0.0.0`
without HOST in the environment does not leave the API open to the network.

Without a key (auth off) the caller is tenant "default" with the settings' limits.
A key that is presented is always checked, whatever the mode.

Failed authentications (a presented key that is malformed, unknown or revoked) are
limited by two token buckets in Redis (lua/auth_failures.lua, Redis's clock, shared by
every API process): one per client address, one per key id named in the key. Each
failure takes a token from both; tokens come back at auth_failures_per_min_* a minute
up to auth_failures_burst_*. What happens once a bucket is empty:
- the address's: every attempt from that address is 429 (Retry-After) before its key is
  even looked at, a valid key included, until a token is back. GitHub does the same
  ("temporarily reject all authentication attempts ... including ones with valid
  credentials"); it locks out the guesser, not the key's owner elsewhere.
- the key id's: attempts with a wrong secret for that id are 429 instead of 401, while
  the right secret still authenticates. Key ids are not secret, so a lock that refused
  the right secret too would let any tenant lock another out of its own key.
A request without a key (401 where one is needed) guesses nothing and is not counted.
Successful checks run on the event loop (redis.asyncio), never behind the thread pool.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import re
import sys
from dataclasses import dataclass, fields
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from tricklab.server import scripts
from tricklab.server.apikeys import KEY_RE, LIMIT_FIELDS, ApiKey, KeyRing
from tricklab.server.keyspace import Keyspace
from tricklab.settings import Settings, is_loopback

log = logging.getLogger("tricklab.api")

DEFAULT_TENANT = "default"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tricklab"'}

# Refill `rate` tokens a second up to `burst`; take one. -> {allowed, seconds to wait}.
# Redis' own clock, so several API processes share one bucket consistently.


@dataclass(frozen=True)
class Limits:
    max_active_jobs: int
    max_upload_bytes: int
    max_dataset_bytes_total: int
    max_train_samples: int
    rate_limit_per_s: float
    rate_limit_burst: int
    # defaults only for limits stored before these existed (a search's record)
    max_total_steps: int = 10_000_000
    max_parameters: int = 100_000_000

    @classmethod
    def of(cls, settings: Settings, overrides: dict[str, Any] | None = None) -> Limits:
        vals = {f.name: getattr(settings, f.name) for f in fields(cls)}
        vals.update({k: v for k, v in (overrides or {}).items() if k in LIMIT_FIELDS})
        return cls(**vals)


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str | None
    limits: Limits


def auth_required(settings: Settings) -> bool:
    """What the settings alone say; requests arriving on a public address may add to it."""
    if settings.auth == "required":
        return True
    if settings.auth == "off":
        return False
    return not is_loopback(settings.host)


def install(app: FastAPI, settings: Settings) -> None:
    """Set up key checks and the rate limiter; warn loudly when the API starts open."""
    app.state.auth_required = auth_required(settings)
    app.state.keyring = KeyRing(app.state.redis, settings.key_prefix)
    app.state.rate_bucket = scripts.register(app.state.aredis, "rate_bucket")
    app.state.auth_failures = scripts.register(app.state.aredis, "auth_failures")
    if not app.state.auth_required:
        _key_optional_in_openapi(app)
        why = (
            "TRICKLAB_AUTH=off" if settings.auth == "off" else f"API bound to {settings.host} only"
        )
        msg = (
            f"tricklab: WARNING auth is off: {why}; anyone who can reach it acts as tenant "
            f"'{DEFAULT_TENANT}'. Set HOST to a public address or TRICKLAB_AUTH=required "
            "and create keys with `tricklab keys create NAME`."
        )
        if log.hasHandlers():
            log.warning(msg)
        else:  # uvicorn configures only its own loggers: make sure the warning is seen
            print(msg, file=sys.stderr, flush=True)


def _key_optional_in_openapi(app: FastAPI) -> None:
    """With auth off the bearer scheme is optional: add the empty requirement `{}` to each."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for ops in schema.get("paths", {}).values():
            for op in ops.values():
                if isinstance(op, dict) and op.get("security") and {} not in op["security"]:
                    op["security"].append({})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _needs_key(request: Request) -> bool:
    if request.app.state.auth_required:
        return True
    settings: Settings = request.app.state.settings
    if settings.auth != "auto":
        return False
    # Arrived on a non-loopback local address: the port is reachable beyond this host.
    server = request.scope.get("server")
    host = server[0] if server else None
    try:
        ipaddress.ip_address(host or "")
    except ValueError:
        return False  # a unix socket or an in-process test client: no network address
    return not is_loopback(host)


bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `tricklab keys create NAME`, as `Authorization: Bearer tl_...`",
)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, None, CHALLENGE)


async def get_principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller: 401 without a valid key where one is needed; 429 past the key's rate or
    past the failed-authentication limits. All on the event loop (redis.asyncio): checking
    a key never waits for a thread behind heavy requests."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    if creds is None:
        principal = _anonymous(request)
    else:
        principal = await _authenticate(request, creds.credentials)
        await _take_token(request, principal)
    request.state.principal = principal
    return principal


def _anonymous(request: Request) -> Principal:
    if _needs_key(request):
        if request.headers.get("authorization") is not None:
            raise _unauthorized("the Authorization header must be 'Bearer <API key>'")
        raise _unauthorized(
            "this API needs an API key: send 'Authorization: Bearer <key>' "
            "(create one with `tricklab keys create NAME`)"
        )
    return Principal(DEFAULT_TENANT, None, Limits.of(request.app.state.settings))


def client_address(request: Request) -> str:
    """The peer's address as uvicorn reports it (behind a proxy: what --proxy-headers and
    --forwarded-allow-ips make of X-Forwarded-For)."""
    return request.client.host if request.client else "unknown"


def _failure_buckets(request: Request, key_id: str | None) -> tuple[list[str], list[float]]:
    """The failed-authentication buckets a request answers to: its address's, and the key
    id's when the presented key has one; with [rate a second, burst] for each."""
    s: Settings = request.app.state.settings
    ks = Keyspace(s.key_prefix)
    keys = [ks.auth_failures_addr(client_address(request))]
    args = [s.auth_failures_per_min_addr / 60, s.auth_failures_burst_addr]
    if key_id is not None:
        keys.append(ks.auth_failures_key(key_id))
        args += [s.auth_failures_per_min_key / 60, s.auth_failures_burst_key]
    return keys, args


def _limited(rate: float, burst: float) -> bool:
    return rate > 0 and burst > 0


async def _authenticate(request: Request, presented: str) -> Principal:
    """Check a presented key, with the failed-authentication limits (see AUTH_FAILURES)."""
    state = request.app.state
    m = KEY_RE.match(presented)
    key_id = m.group(1) if m else None
    keys, args = _failure_buckets(request, key_id)
    async with state.aredis.pipeline(transaction=False) as pipe:
        await state.auth_failures(keys=keys, args=["peek", *args], client=pipe)
        if key_id is not None:
            pipe.hgetall(state.keyring.key(key_id))
        res = await pipe.execute()
    waits = [
        float(w) if _limited(args[2 * i], args[2 * i + 1]) else 0.0 for i, w in enumerate(res[0])
    ]
    addr = client_address(request)
    if waits[0] > 0:  # this address guessed too often: refused whatever it sends now
        raise _too_many_failures(request, f"from {addr}", "addr", waits[0])
    key = _check_key(m, res[1] if key_id is not None else {})
    if key is None:
        if len(waits) > 1 and waits[1] > 0:
            raise _too_many_failures(request, f"for key id {key_id}", "key", waits[1])
        await state.auth_failures(keys=keys, args=["take", *args])
        log.info("failed authentication from %s (key id %s)", addr, key_id or "malformed")
        raise _unauthorized("the API key is unknown, malformed or revoked")
    return Principal(key.tenant, key.id, Limits.of(state.settings, key.limits))


def _check_key(m: re.Match[str] | None, record: dict[str, str]) -> ApiKey | None:
    """KeyRing.verify's check on a record already read (it reads with the sync client)."""
    if m is None:
        return None
    # Compare even when the id is unknown, so both misses take the same time.
    digest = hashlib.sha256(m.group(2).encode()).hexdigest()
    ok = hmac.compare_digest(digest, record.get("hash") or "0" * 64)
    if not record or not ok or record.get("revoked_at"):
        return None
    return KeyRing._decode(record)


def _too_many_failures(request: Request, whom: str, which: str, wait: float) -> ApiError:
    """429 for a locked-out address (which="addr") or key id (which="key")."""
    s: Settings = request.app.state.settings
    per_min = getattr(s, f"auth_failures_per_min_{which}")
    burst = getattr(s, f"auth_failures_burst_{which}")
    retry = max(1, math.ceil(wait))
    scope = (
        "every authentication from this address is refused, even with a valid key"
        if which == "addr"
        else "wrong secrets for this key id are refused (the right one still works)"
    )
    return ApiError(
        429,
        "too_many_auth_failures",
        f"too many failed authentications {whom} (more than {burst}, then {per_min:g} a minute: "
        f"auth_failures_burst_{which} / auth_failures_per_min_{which}); {scope} for {retry} s",
        {"limit": f"auth_failures_per_min_{which}", "per_min": per_min, "burst": burst},
        {"Retry-After": str(retry)},
    )


async def _take_token(request: Request, p: Principal) -> None:
    rate, burst = p.limits.rate_limit_per_s, p.limits.rate_limit_burst
    if rate <= 0 or burst <= 0:
        return
    assert p.key_id is not None  # only requests that sent a key get here
    key = Keyspace(request.app.state.settings.key_prefix).rate_bucket(p.key_id)
    ok, wait = await request.app.state.rate_bucket(keys=[key], args=[rate, burst])
    if int(ok) != 1:
        retry = max(1, int(float(wait) + 0.999))
        raise ApiError(
            429,
            "rate_limited",
            f"more than {rate:g} requests a second (burst {burst}) with this key; "
            f"retry in {retry} s",
            {"limit": "rate_limit_per_s", "rate_limit_per_s": rate, "burst": burst},
            {"Retry-After": str(retry)},
        )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


# Routes anyone may call; /docs, /openapi.json and /static are not API routes at all.
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz"})


async def require_caller(request: Request) -> None:
    """App-wide: every API route but OPEN_PATHS checks the caller, even one without TenantDep."""
    if request.url.path in OPEN_PATHS:
        return
    await get_principal(request, _credentials(request))


def _credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())


def _error_response(description: str) -> dict[str, Any]:
    from api.schemas import ErrorPublic

    return {"model": ErrorPublic, "description": description}


# Declared on every operation (main.py passes them to FastAPI): any route can answer these.
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error_response("Malformed request (a body that does not parse)"),
    413: _error_response("Request body above the size limit"),
    401: _error_response("Missing, unknown or revoked API key (WWW-Authenticate: Bearer)"),
    429: _error_response("Rate limit or quota exceeded (Retry-After on rate limits)"),
}
