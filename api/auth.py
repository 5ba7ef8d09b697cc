"""Who is calling: the API key (`Authorization: Bearer tl_...`), its tenant, limits and rate.

settings.auth: "required" always asks for a key; "off" never does; "auto" (the default)
asks unless the API is bound to a loopback address only. In auto mode a request that
arrived on a non-loopback local address needs a key as well, so `uvicorn --host 0.0.0.0`
without HOST in the environment does not leave the API open to the network.

Without a key (auth off) the caller is tenant "default" with the settings' limits.
A key that is presented is always checked, whatever the mode.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from dataclasses import dataclass, fields
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from tricklab.server import scripts
from tricklab.server.apikeys import LIMIT_FIELDS, KeyRing
from tricklab.server.keyspace import Keyspace
from tricklab.settings import Settings

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


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    app.state.rate_bucket = scripts.register(app.state.redis, "rate_bucket")
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
    """The caller: 401 without a valid key where one is needed; 429 past the key's rate."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    if creds is None:  # no I/O: answer on the event loop, no thread hop
        return _resolve_principal(request, creds)
    # a key: its lookup and rate bucket are (blocking) Redis calls
    return await run_in_threadpool(_resolve_principal, request, creds)


def _resolve_principal(request: Request, creds: HTTPAuthorizationCredentials | None) -> Principal:
    settings: Settings = request.app.state.settings
    raw_header = request.headers.get("authorization")
    if creds is None:
        if raw_header is not None and _needs_key(request):
            raise _unauthorized("the Authorization header must be 'Bearer <API key>'")
        if _needs_key(request):
            raise _unauthorized(
                "this API needs an API key: send 'Authorization: Bearer <key>' "
                "(create one with `tricklab keys create NAME`)"
            )
        principal = Principal(DEFAULT_TENANT, None, Limits.of(settings))
    else:
        key = request.app.state.keyring.verify(creds.credentials)
        if key is None:
            raise _unauthorized("the API key is unknown, malformed or revoked")
        principal = Principal(key.tenant, key.id, Limits.of(settings, key.limits))
        _take_token(request, principal)
    request.state.principal = principal
    return principal


def _take_token(request: Request, p: Principal) -> None:
    rate, burst = p.limits.rate_limit_per_s, p.limits.rate_limit_burst
    if rate <= 0 or burst <= 0:
        return
    assert p.key_id is not None  # only requests that sent a key get here
    key = Keyspace(request.app.state.settings.key_prefix).rate_bucket(p.key_id)
    ok, wait = request.app.state.rate_bucket(keys=[key], args=[rate, burst])
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
