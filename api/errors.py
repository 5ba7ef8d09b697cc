"""The one error shape, ``{"error": {"code", "message", "details"}}``, for every 4xx, 503 and 507."""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from redis.exceptions import MaxConnectionsError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.error_hints import hinted
from tricks.spec import validation_errors

log = logging.getLogger("tricklab.api")

REDIS_DOWN = "the job store (Redis) is unreachable; retry shortly"
POOL_EXHAUSTED = (
    "the API's Redis connection pool is exhausted (every connection stayed busy for "
    "TRICKLAB_REDIS_POOL_TIMEOUT_S); Redis itself is up: retry shortly"
)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
    507: "insufficient_storage",
}


class ApiError(Exception):
    """Raise from a route to answer with the error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} '{ident}' does not exist")


def invalid(loc: list[str | int], msg: str) -> ApiError:
    """A 422 for one field, in the same shape as pydantic's errors."""
    return ApiError(422, "validation_error", msg, [{"loc": loc, "msg": msg}])


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


class _Errors:
    """Adapter so tricks.spec.validation_errors reads FastAPI's error list like a ValidationError."""

    def __init__(self, errors: Any) -> None:
        self._errors = list(errors)

    def errors(self, include_url: bool = False) -> list[dict[str, Any]]:
        return self._errors


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """[{loc, msg}] with union tags folded, SpecError paths joined and the leading "body" dropped."""
    out = []
    for e in validation_errors(_Errors(errors)):  # type: ignore[arg-type]
        loc = list(e["loc"])
        if loc and loc[0] == "body":
            loc = loc[1:]
        out.append({"loc": loc, "msg": e["msg"]})
    return out


def spec_errors(exc: ValidationError, model: Any) -> list[dict[str, Any]]:
    """validation_errors(exc) with the hints a request body's 422 gets ("did you mean ..."),
    for specs validated inside a route (a sweep's variants, a search's base)."""
    errors = [dict(e) for e in exc.errors(include_url=False)]
    # already JSON: no content-type hint, only the field ones
    raw = hinted(errors, body=None, content_type="application/json", model=model)
    return validation_errors(_Errors(raw))  # type: ignore[arg-type]


def summary(details: list[dict[str, Any]]) -> str:
    parts = [_where(d) + d["msg"] for d in details[:3]]
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    return "; ".join(parts) + more


def _where(d: dict[str, Any]) -> str:
    """'optimizer.lr: ', or nothing where the message says where itself (JSON syntax)."""
    if str(d["msg"]).startswith("JSON syntax error"):
        return ""
    return f"{'.'.join(map(str, d['loc'])) or 'body'}: "


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    raw = list(exc.errors())
    try:
        raw = hinted(
            raw,
            body=exc.body,
            content_type=request.headers.get("content-type"),
            model=_body_model(request),
        )
    except Exception:  # a hint must never turn the caller's 422 into a 500
        log.exception("error hints failed for %s %s", request.method, request.url.path)
    details = field_errors(raw)
    return error_response(422, "validation_error", summary(details), details)


def _body_model(request: Request) -> Any:
    """The annotation of the route's body (JobSpec for POST /jobs), for the field hints."""
    field = getattr(request.scope.get("route"), "body_field", None)
    return getattr(getattr(field, "field_info", None), "annotation", None)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    details = getattr(exc, "details", None)  # api.limits' body checks carry their own
    return error_response(exc.status_code, code, message, details, getattr(exc, "headers", None))


async def _api(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("redis unreachable during %s %s: %r", request.method, request.url.path, exc)
    return error_response(503, "redis_unavailable", REDIS_DOWN, None, {"Retry-After": "2"})


async def _pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
    log.warning("redis pool exhausted during %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "redis_pool_exhausted", POOL_EXHAUSTED, None, {"Retry-After": "1"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api)  # type: ignore[arg-type]
    app.add_exception_handler(redis.ConnectionError, _redis_down)
    # a subclass of ConnectionError: its own handler wins (handlers are looked up by MRO)
    app.add_exception_handler(MaxConnectionsError, _pool_exhausted)
    app.add_exception_handler(redis.TimeoutError, _redis_down)
