"""Resumable uploads, tus 1.0.0 (core, creation, termination, expiration, checksum).

POST /uploads makes an empty upload of Upload-Length bytes, PATCHes append from its
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


def _int_header(name: str, raw: str | None) -> int:
    """A non-negative integer header; 400 naming it otherwise (tus answers 400, not 422)."""
    if raw is None or not raw.strip().isdigit() or len(raw.strip()) > 19:
        what = "missing" if raw is None else f"'{raw[:40]}', not a non-negative integer"
        raise tus_error(
            400, "bad_request", f"{name} is {what}", [{"loc": ["header", name], "msg": what}]
        )
    return int(raw)


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
    length: int
    offset: int
    expires_at: str


@router.post(
    "",
    status_code=201,
    response_model=UploadPublic,
    responses={
        **ERRORS,
        201: {
            "description": "Created; PATCH its Location",
            "headers": {
                "Location": _h("/uploads/{id}"),
                "Upload-Expires": _h("When an unfinished upload is removed (RFC 7231 date)"),
                **TUS_H,
            },
        },
        400: {**ERR, "description": "Upload-Length or Upload-Metadata missing or malformed"},
        413: {**ERR, "description": "Above max_upload_bytes, or the storage quota is full"},
    },
)
def create_upload(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    principal: PrincipalDep,
    tus_resumable: TusResumable = None,
    upload_length: Annotated[
        str | None, Header(alias="Upload-Length", description="Size of the whole file in bytes")
    ] = None,
    upload_metadata: Annotated[
        str | None,
        Header(
            alias="Upload-Metadata",
            description="Comma-separated 'key base64(value)' pairs; filename names the file",
        ),
    ] = None,
) -> JSONResponse:
    """Start a resumable upload of Upload-Length bytes (tus creation)."""
    _check_version(tus_resumable)
    length = _int_header("Upload-Length", upload_length)
    meta = parse_metadata(upload_metadata)
    limits = principal.limits
    if length > limits.max_upload_bytes:
        raise tus_error(
            413,
            "payload_too_large",
            f"Upload-Length {length} is above the {limits.max_upload_bytes} byte limit "
            "(max_upload_bytes, the Tus-Max-Size of OPTIONS /uploads)",
            {"limit": "max_upload_bytes", "max_upload_bytes": limits.max_upload_bytes},
        )
    uploads = _uploads(store, settings)
    _check_room(store, settings, uploads, tenant, length, limits.max_dataset_bytes_total)
    up = uploads.create(tenant, length, upload_metadata or "", filename_of(meta))
    location = request.scope.get("root_path", "").rstrip("/") + f"/uploads/{up.id}"
    body = UploadPublic(
        id=up.id, location=location, length=length, offset=0, expires_at=iso(up.expires_at) or ""
    )
    headers = {**_TUS, "Location": location, "Upload-Expires": up.expires_http}
    return JSONResponse(body.model_dump(), status_code=201, headers=headers)


def _check_room(
    store: Any, settings: Any, uploads: Uploads, tenant: str, length: int, most: int
) -> None:
    """413 when stored datasets + the tenant's other uploads + this one pass
    max_dataset_bytes_total (the bytes counted as api.quotas counts a dataset's)."""
    from api.routes.datasets import repo_of  # datasets imports api.tus: import here

    stored = repo_of(store, settings).stored_total(tenant)
    reserved = uploads.reserved_bytes(tenant)
    if stored + reserved + length > most:
        raise tus_error(
            413,
            "quota_exceeded",
            f"your datasets use {stored} bytes and your unfinished uploads reserve {reserved}; "
            f"this {length} byte upload would pass the {most} byte limit "
            "(max_dataset_bytes_total); delete a dataset or an upload (DELETE /uploads/{id}) "
            "first",
            {
                "limit": "max_dataset_bytes_total",
                "used": stored,
                "reserved": reserved,
                "max_dataset_bytes_total": most,
            },
        )


@router.head(
    "/{upload_id}",
    response_class=Response,
    responses={
        **ERRORS,
        200: {
            "description": "How far the upload got",
            "headers": {
                **OFFSET_H,
                "Upload-Length": _h("Size of the whole file"),
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
        "Upload-Length": str(up.length),
        "Upload-Expires": up.expires_http,
        "Cache-Control": "no-store",
    }
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
        400: {**ERR, "description": "Upload-Offset or Upload-Checksum malformed, or the body "
              "runs past Upload-Length (nothing of it is kept)"},
        409: {**ERR, "description": "Upload-Offset is not the upload's offset (HEAD for it)"},
        413: {**ERR, "description": "Body above max_upload_bytes"},
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
) -> Response:
    """Append the body at Upload-Offset; a dropped connection keeps what arrived.

    The body is raw bytes with Content-Type: application/offset+octet-stream (read as a
    stream, so it is not declared as a schema here)."""
    _check_version(tus_resumable)
    # Content-Type and -Length are read, not declared: a fuzzer must not forge the framing
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != OFFSET_TYPE:
        raise tus_error(
            415,
            "unsupported_media_type",
            f"Content-Type is '{media[:60]}'; a PATCH body must be {OFFSET_TYPE}",
        )
    offset = _int_header("Upload-Offset", upload_offset)
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
        length = request.headers.get("content-length")
        return await append(request, uploads, up, token, offset, checksum, length)
    finally:
        await run_in_threadpool(uploads.unlock, upload_id, token)
