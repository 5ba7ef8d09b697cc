"""Resumable uploads, tus 1.0.0 (core, creation, creation-with-upload, creation-defer-length,
termination, expiration, checksum).

POST /uploads makes an upload of Upload-Length bytes (or of a length a later PATCH declares),
empty or holding the POST's body as its first chunk (api/tus_create.py); PATCHes append from its
Upload-Offset (streamed to disk, bounded memory), HEAD says how far it got (after a dropped
connection: resume from there), DELETE drops it. Once complete, POST /datasets
{"upload": id} turns it into a dataset. The records and files are api/tus.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.auth import PrincipalDep
from api.deps import SettingsDep, StoreDep, TenantDep
from api.schemas import ErrorPublic
from api.tus import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    LOCK_TTL_S,
    RESUMABLE,
    TUS_VERSION,
    Upload,
    Uploads,
    filename_of,
    parse_metadata,
    tus_error,
)
from api.tus_create import create, declare_length, first_chunk, int_header, parse_length, room
from api.tus_patch import OFFSET_TYPE, append, parse_checksum
from tricklab.server.records import iso

router = APIRouter(prefix="/uploads", tags=["uploads"])


def _h(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_TUS = RESUMABLE
TUS_H = {"Tus-Resumable": _h("1.0.0")}
OFFSET_H = {"Upload-Offset": _h("Bytes received so far"), **TUS_H}
ERR = {"model": ErrorPublic}
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {**ERR, "description": "No such upload (or another tenant's)"},
    412: {**ERR, "description": "Tus-Resumable is not 1.0.0 (Tus-Version lists what is)"},
    503: {**ERR, "description": "Redis unreachable"},
}

TusResumable = Annotated[
    str | None, Header(alias="Tus-Resumable", description="The protocol version: 1.0.0")
]


def _uploads(store: Any, settings: Any) -> Uploads:
    return Uploads.of(store, settings)


def _check_version(value: str | None) -> None:
    """412 unless the request speaks tus 1.0.0 (every request but OPTIONS carries it)."""
    if value != TUS_VERSION:
        shown = "missing" if value is None else f"'{value[:40]}'"
        raise tus_error(
            412,
            "precondition_failed",
            f"Tus-Resumable is {shown}; this server speaks tus {TUS_VERSION} "
            f"(send Tus-Resumable: {TUS_VERSION})",
            Tus_Version=TUS_VERSION,
        )


def _get(uploads: Uploads, tenant: str, upload_id: str) -> Upload:
    up = uploads.get(tenant, upload_id)
    if up is None:
        raise tus_error(404, "not_found", f"no upload '{upload_id[:64]}'", {"upload": upload_id})
    return up


@router.options(
    "",
    status_code=204,
    response_class=Response,
    responses={
        204: {
            "description": "What this server supports",
            "headers": {
                "Tus-Version": _h("1.0.0"),
                "Tus-Extension": _h(EXTENSIONS),
                "Tus-Max-Size": _h("Largest Upload-Length accepted (your max_upload_bytes)"),
                "Tus-Checksum-Algorithm": _h(",".join(CHECKSUM_ALGORITHMS)),
            },
        }
    },
)
def read_upload_options(principal: PrincipalDep) -> Response:
    """The tus versions, extensions and largest upload this server accepts."""
    return Response(
        status_code=204,
        headers={
            **_TUS,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(principal.limits.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        },
    )


class UploadPublic(BaseModel):
    """What POST /uploads answers besides its headers (tus clients read only the headers)."""

    id: str
    location: str
    length: int | None  # null while deferred (Upload-Defer-Length: 1)
    offset: int
    expires_at: str


@router.post(
    "",
    status_code=201,
    response_model=UploadPublic,
    responses={
        **ERRORS,
        201: {
            "description": "Created (holding the body, if one was sent); PATCH its Location",
            "headers": {
                "Location": _h("/uploads/{id}"),
                "Upload-Offset": _h("Bytes stored from the body (creation-with-upload)"),
                "Upload-Expires": _h("When an unfinished upload is removed (RFC 7231 date)"),
                **TUS_H,
            },
        },
        400: {**ERR, "description": "Upload-Length, Upload-Defer-Length, Upload-Metadata or "
              "Upload-Checksum missing or malformed, or the body past Upload-Length"},
        413: {**ERR, "description": "Above max_upload_bytes, or the storage quota is full"},
        460: {**ERR, "description": "The body's Upload-Checksum does not match"},
        507: {**ERR, "description": "The server's disk is full"},
    },
)  # fmt: skip
async def create_upload(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    principal: PrincipalDep,
    tus_resumable: TusResumable = None,
    upload_length: Annotated[
        str | None, Header(alias="Upload-Length", description="Size of the whole file in bytes")
    ] = None,
    upload_defer_length: Annotated[
        str | None,
        Header(alias="Upload-Defer-Length", description="1: the length comes with a PATCH"),
    ] = None,
    upload_metadata: Annotated[
        str | None,
        Header(
            alias="Upload-Metadata",
            description="Comma-separated 'key base64(value)' pairs; filename names the file",
        ),
    ] = None,
    upload_checksum: Annotated[
        str | None, Header(alias="Upload-Checksum", description="Of the body, as for a PATCH")
    ] = None,
) -> Response:
    """Start a resumable upload of Upload-Length bytes, or of a length declared later
    (Upload-Defer-Length: 1); a body sent as application/offset+octet-stream is its first
    chunk (tus creation, creation-defer-length, creation-with-upload)."""
    _check_version(tus_resumable)
    length = parse_length(upload_length, upload_defer_length)
    meta = parse_metadata(upload_metadata)
    media = _media_type(request)
    with_body = media == OFFSET_TYPE
    checksum = parse_checksum(upload_checksum) if with_body else None
    limits = principal.limits
    uploads = _uploads(store, settings)

    up = await run_in_threadpool(
        create, store, settings, uploads, tenant, length, upload_metadata or "",
        filename_of(meta), limits, with_body=with_body,
    )  # fmt: skip
    offset = 0
    if with_body:
        done = await first_chunk(request, store, settings, uploads, up, checksum, limits)
        if isinstance(done, Response):
            return done
        offset = done
    location = request.scope.get("root_path", "").rstrip("/") + f"/uploads/{up.id}"
    body = UploadPublic(
        id=up.id, location=location, length=length, offset=offset,
        expires_at=iso(up.expires_at) or "",
    )  # fmt: skip
    headers = {**_TUS, "Location": location, "Upload-Expires": up.expires_http}
    if with_body:
        headers["Upload-Offset"] = str(offset)
    return JSONResponse(body.model_dump(), status_code=201, headers=headers)


@router.head(
    "/{upload_id}",
    response_class=Response,
    responses={
        **ERRORS,
        200: {
            "description": "How far the upload got",
            "headers": {
                **OFFSET_H,
                "Upload-Length": _h("Size of the whole file (absent while deferred)"),
                "Upload-Defer-Length": _h("1 while the length is not yet declared"),
                "Upload-Metadata": _h("As sent at creation"),
                "Upload-Expires": _h("When an unfinished upload is removed"),
                "Cache-Control": _h("no-store"),
            },
        },
    },
)
def read_upload_offset(
    upload_id: str,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    tus_resumable: TusResumable = None,
) -> Response:
    """The upload's offset: resume a PATCH from here."""
    _check_version(tus_resumable)
    up = _get(_uploads(store, settings), tenant, upload_id)
    headers = {
        **_TUS,
        "Upload-Offset": str(up.offset),
        "Upload-Expires": up.expires_http,
        "Cache-Control": "no-store",
    }
    if up.length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(up.length)
    if up.metadata:
        headers["Upload-Metadata"] = up.metadata
    return Response(status_code=200, headers=headers)


@router.delete(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    responses={**ERRORS, 204: {"description": "Gone (file and record)", "headers": TUS_H}},
)
def delete_upload(
    upload_id: str,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    tus_resumable: TusResumable = None,
) -> Response:
    """Drop an upload, finished or not (tus termination); a PATCH still writing it stops."""
    _check_version(tus_resumable)
    uploads = _uploads(store, settings)
    up = _get(uploads, tenant, upload_id)
    uploads.remove(up.id, tenant)
    return Response(status_code=204, headers=_TUS)


@router.patch(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    responses={
        **ERRORS,
        204: {
            "description": "Bytes stored; Upload-Offset is the new offset",
            "headers": {**OFFSET_H, "Upload-Expires": _h("When the upload is removed")},
        },
        400: {**ERR, "description": "Upload-Offset, Upload-Length or Upload-Checksum malformed, "
              "Upload-Length changed or below the offset, or the body runs past Upload-Length "
              "(nothing of it is kept)"},
        409: {**ERR, "description": "Upload-Offset is not the upload's offset (HEAD for it)"},
        413: {**ERR, "description": "Body or declared length above max_upload_bytes or the "
              "quota"},
        415: {**ERR, "description": f"Content-Type is not {OFFSET_TYPE}"},
        423: {**ERR, "description": "Another PATCH is writing this upload"},
        460: {**ERR, "description": "Upload-Checksum does not match (nothing of it is kept)"},
        507: {**ERR, "description": "The server's disk is full (the bytes before are kept)"},
    },
)  # fmt: skip
async def append_upload(
    upload_id: str,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    principal: PrincipalDep,
    tus_resumable: TusResumable = None,
    upload_offset: Annotated[
        str | None, Header(alias="Upload-Offset", description="Where this body starts")
    ] = None,
    upload_checksum: Annotated[
        str | None,
        Header(
            alias="Upload-Checksum", description="'sha1|md5|sha256 base64(digest)' of this body"
        ),
    ] = None,
    upload_length: Annotated[
        str | None,
        Header(alias="Upload-Length", description="Declares a deferred upload's length, once"),
    ] = None,
) -> Response:
    """Append the body at Upload-Offset; a dropped connection keeps what arrived.

    The body is raw bytes with Content-Type: application/offset+octet-stream (read as a
    stream, so it is not declared as a schema here)."""
    _check_version(tus_resumable)
    # Content-Type and -Length are read, not declared: a fuzzer must not forge the framing
    media = _media_type(request)
    if media != OFFSET_TYPE:
        raise tus_error(
            415,
            "unsupported_media_type",
            f"Content-Type is '{media[:60]}'; a PATCH body must be {OFFSET_TYPE}",
        )
    offset = int_header("Upload-Offset", upload_offset)
    checksum = parse_checksum(upload_checksum)
    uploads = _uploads(store, settings)
    _get(uploads, tenant, upload_id)
    token = await run_in_threadpool(uploads.lock, upload_id)
    if token is None:
        raise tus_error(
            423,
            "upload_locked",
            f"another PATCH is writing upload {upload_id}; wait for it to end (a stalled one "
            f"loses the upload within {LOCK_TTL_S} s), HEAD for the offset and resume",
            Retry_After="1",
        )
    try:
        up = _get(uploads, tenant, upload_id)  # fresh, under the lock
        await run_in_threadpool(uploads.settle, up)
        limits = principal.limits
        if up.offset == offset:  # a stale offset is a 409 whatever else the PATCH carries
            await run_in_threadpool(
                declare_length, store, settings, uploads, up, upload_length, limits, token
            )
        length = request.headers.get("content-length")
        space = await run_in_threadpool(room, store, settings, uploads, up, limits, token, length)
        return await append(request, uploads, up, token, offset, checksum, length, space)
    finally:
        await run_in_threadpool(uploads.unlock, upload_id, token)


def _media_type(request: Request) -> str:
    """The body's media type, lower case, without parameters ('' when there is none)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
