"""What POST /uploads and a PATCH that declares a length check: the tus creation,
creation-with-upload and creation-defer-length extensions.

- The length: Upload-Length, reserved against the quota as the record is written, or
  Upload-Defer-Length: 1 (the length comes with a later PATCH, once; until then the upload
  counts its bytes on disk against the quota, and each PATCH reserves what it may add, which
  the upload limit and the quota bound: `room`). The reservations are api/tus_quota.py's.
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
from api.tus import LOCK_TTL_S, LockLost, Upload, Uploads, tus_error
from api.tus_patch import Room, store_body
from api.tus_quota import quota_exceeded, reserve

# How long a creation-with-upload POST's upload lives before its first chunk is in: the lock
# that chunk's writer takes (and renews) keeps it while the body streams.
PENDING_EXPIRY_S = LOCK_TTL_S


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


def create(
    store: Any, settings: Any, uploads: Uploads, tenant: str, length: int | None,
    metadata: str, filename: str, limits: Any, *, with_body: bool = False,
) -> Upload:  # fmt: skip
    """A new upload. One with a length reserves it at once, in the script that writes its
    record (api/tus_quota.py): 413 when stored datasets + the tenant's other uploads + this
    one pass max_dataset_bytes_total, and the file made for it goes again. A deferred one
    holds nothing yet (its PATCHes reserve as they come).

    One whose first chunk comes with the POST expires after PENDING_EXPIRY_S until
    first_chunk renews it: if the process dies before the 201, no one knows its Location
    to delete it, and its reservation must not outlive the lock of that first chunk."""
    expires_in = PENDING_EXPIRY_S if with_body else None
    if length is None:
        return uploads.create(tenant, None, metadata, filename, expires_in)
    check_size(length, limits.max_upload_bytes)
    most = limits.max_dataset_bytes_total
    up, fields = uploads.prepare(tenant, length, metadata, filename, expires_in)
    try:
        got = reserve(
            uploads, tenant, "create", up.id, length, most, store, settings, fields=fields
        )
    except BaseException:
        uploads.path(up.id).unlink(missing_ok=True)
        raise
    if not got.ok:
        uploads.path(up.id).unlink(missing_ok=True)
        raise quota_exceeded(got.stored, got.held, length, most)
    return up


def room(
    store: Any, settings: Any, uploads: Uploads, up: Upload, limits: Any, token: str,
    content_length: str | None,
) -> Room | None:  # fmt: skip
    """For an upload whose length is deferred: reserve what the PATCH (holding the lock
    `token`) may add, and say which limit sets it (None once the length is known:
    Upload-Length bounds the body). The grant is all the room the upload limit and the quota
    leave, or only the Content-Length when that is less; unlock() returns it."""
    if up.length is not None:
        return None
    by_size = max(limits.max_upload_bytes - up.offset, 0)
    want = by_size
    if content_length and content_length.isdigit():
        want = min(want, int(content_length))
    most = limits.max_dataset_bytes_total
    got = reserve(uploads, up.tenant, "grant", up.id, want, most, store, settings, token=token)
    return got.granted, "max_upload_bytes" if by_size <= got.room else "max_dataset_bytes_total"


def declare_length(
    store: Any, settings: Any, uploads: Uploads, up: Upload, raw: str | None, limits: Any,
    token: str,
) -> None:  # fmt: skip
    """A PATCH's Upload-Length: sets a deferred upload's length (once); for one whose length
    is known it must repeat it. 400 when it changes or is below the bytes stored, 413 above
    max_upload_bytes or the quota (checked and reserved in one script, api/tus_quota.py). The
    caller holds the upload's lock, `token`."""
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
    most = limits.max_dataset_bytes_total
    got = reserve(uploads, up.tenant, "length", up.id, length, most, store, settings, token=token)
    if not got.ok:
        raise quota_exceeded(got.stored, got.held, length, most)
    up.length = length


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
        length = request.headers.get("content-length")
        space = await run_in_threadpool(room, store, settings, uploads, up, limits, token, length)
        done = await store_body(request, uploads, up, token, 0, checksum, length, space)
        if isinstance(done, Response):
            return done
        if not done.cut:  # cut: no one heard the 201, the Location is known to no one
            try:
                await run_in_threadpool(uploads.renew, up, token)
            except LockLost:
                raise tus_error(
                    409, "upload_lock_lost",
                    f"upload {up.id} was deleted while its first chunk was written",
                ) from None  # fmt: skip
            gone = False
        return done.offset
    finally:
        await run_in_threadpool(uploads.unlock, up.id, token)
        if gone:
            await run_in_threadpool(uploads.remove, up.id, up.tenant)
