"""What POST /uploads and a PATCH that declares a length check: the tus creation,
creation-with-upload and creation-defer-length extensions.

- The length: Upload-Length, or Upload-Defer-Length: 1 (the length comes with a later PATCH,
  once; until then the upload counts its bytes on disk against the quota, and each PATCH may
  add only what the upload limit and the quota leave: `room`).
- creation-with-upload: a POST whose body is application/offset+octet-stream stores it as the
  first chunk through the PATCH's own path (api/tus_patch.store_body: same limits, lock and
  checksum). The client learns the upload's Location only from the 201, so a first chunk
  that is refused, cut short or finds no room takes the new upload with it.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.errors import ApiError
from api.tus import Upload, Uploads, tus_error
from api.tus_patch import Room, store_body


def _bad(name: str, why: str) -> ApiError:
    return tus_error(400, "bad_request", f"{name} {why}", [{"loc": ["header", name], "msg": why}])


def int_header(name: str, raw: str | None) -> int:
    """A non-negative integer header; 400 naming it otherwise (tus answers 400, not 422)."""
    if raw is None or not raw.strip().isdigit() or len(raw.strip()) > 19:
        what = "missing" if raw is None else f"'{raw[:40]}', not a non-negative integer"
        raise _bad(name, f"is {what}")
    return int(raw)


def parse_length(length: str | None, defer: str | None) -> int | None:
    """Upload-Length, or None for Upload-Defer-Length: 1; exactly one of the two."""
    if defer is None:
        if length is None:
            raise _bad("Upload-Length", "is missing (or send Upload-Defer-Length: 1)")
        return int_header("Upload-Length", length)
    if defer.strip() != "1":
        raise _bad("Upload-Defer-Length", f"is '{defer[:40]}'; the only value is 1")
    if length is not None:
        raise _bad("Upload-Length", "and Upload-Defer-Length: 1 were both sent; send one")
    return None


def check_size(length: int, most: int) -> None:
    """413 above the principal's max_upload_bytes."""
    if length > most:
        raise tus_error(
            413,
            "payload_too_large",
            f"Upload-Length {length} is above the {most} byte limit "
            "(max_upload_bytes, the Tus-Max-Size of OPTIONS /uploads)",
            {"limit": "max_upload_bytes", "max_upload_bytes": most},
        )


def _used(store: Any, settings: Any, uploads: Uploads, tenant: str) -> tuple[int, int]:
    """(bytes of stored datasets, bytes the tenant's uploads reserve)."""
    from api.routes.datasets import repo_of  # datasets imports api.tus: import here

    return repo_of(store, settings).stored_total(tenant), uploads.reserved_bytes(tenant)


def check_room(
    store: Any, settings: Any, uploads: Uploads, tenant: str, length: int, most: int,
    already: int = 0,
) -> None:  # fmt: skip
    """413 when stored datasets + the tenant's other uploads + this one pass
    max_dataset_bytes_total (the bytes counted as api.quotas counts a dataset's). `already`:
    what this upload counts in the reserved bytes now (a deferred one: its offset)."""
    stored, reserved = _used(store, settings, uploads, tenant)
    reserved -= already
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


def room(store: Any, settings: Any, uploads: Uploads, up: Upload, limits: Any) -> Room | None:
    """For an upload whose length is deferred: how many bytes a PATCH may add, and which
    limit says so (None once the length is known: Upload-Length bounds the body)."""
    if up.length is not None:
        return None
    stored, reserved = _used(store, settings, uploads, up.tenant)  # counts up.offset
    by_size = limits.max_upload_bytes - up.offset
    by_quota = limits.max_dataset_bytes_total - stored - reserved
    if by_size <= by_quota:
        return max(by_size, 0), "max_upload_bytes"
    return max(by_quota, 0), "max_dataset_bytes_total"


def declare_length(
    store: Any, settings: Any, uploads: Uploads, up: Upload, raw: str | None, limits: Any
) -> None:
    """A PATCH's Upload-Length: sets a deferred upload's length (once); for one whose length
    is known it must repeat it. 400 when it changes or is below the bytes stored, 413 above
    max_upload_bytes or the quota. The caller holds the upload's lock."""
    if raw is None:
        return
    length = int_header("Upload-Length", raw)
    if up.length is not None:
        if length != up.length:
            raise _bad("Upload-Length", f"is {length}, but upload {up.id} is {up.length} bytes "
                       "and a length cannot change once set")  # fmt: skip
        return
    if length < up.offset:
        raise _bad("Upload-Length", f"is {length}, below the {up.offset} bytes upload {up.id} "
                   "already has")  # fmt: skip
    check_size(length, limits.max_upload_bytes)
    check_room(store, settings, uploads, up.tenant, length, limits.max_dataset_bytes_total,
               already=up.offset)  # fmt: skip
    uploads.set_length(up, length)


async def first_chunk(
    request: Request,
    store: Any,
    settings: Any,
    uploads: Uploads,
    up: Upload,
    checksum: tuple[str, bytes] | None,
    limits: Any,
) -> int | Response:
    """The POST's body as the upload's bytes from 0 (creation-with-upload): the offset it
    reached, or the 460 answer. On any refusal the upload is removed again."""
    token = await run_in_threadpool(uploads.lock, up.id)
    assert token is not None  # made a moment ago: no one else knows its id
    gone = True
    try:
        space = await run_in_threadpool(room, store, settings, uploads, up, limits)
        length = request.headers.get("content-length")
        done = await store_body(request, uploads, up, token, 0, checksum, length, space)
        if isinstance(done, Response):
            return done
        gone = done.cut  # no one heard the 201: the Location is known to no one
        return done.offset
    finally:
        await run_in_threadpool(uploads.unlock, up.id, token)
        if gone:
            await run_in_threadpool(uploads.remove, up.id, up.tenant)
