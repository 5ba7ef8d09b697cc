"""One PATCH /uploads/{id} once the route holds the upload's lock: the offset check, then the
body streamed to the file a buffer at a time (api/tus_writer.py) and never past Upload-Length
(or, while the length is deferred, past the room the route computed: the upload limit and
the storage quota). POST /uploads with a body (creation-with-upload, api/tus_create.py)
writes its first chunk through the same store_body.

A dropped connection keeps what arrived; with Upload-Checksum nothing of the request is kept
unless the whole body arrived and matched.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from api.errors import ApiError, error_response
from api.tus import CHECKSUM_ALGORITHMS, RESUMABLE, LockLost, Upload, Uploads, tus_error
from api.tus_writer import DiskFull, Writer

# While Upload-Length is deferred: (bytes this body may add, the limit that sets it).
Room = tuple[int, str]

OFFSET_TYPE = "application/offset+octet-stream"
# Bytes gathered from the request stream before one write + offset record (a thread hop).
FLUSH_BYTES = 1 << 20
_TUS = RESUMABLE


def parse_checksum(raw: str | None) -> tuple[str, bytes] | None:
    if raw is None:
        return None
    algo, _, b64 = raw.strip().partition(" ")
    try:
        digest = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if algo not in CHECKSUM_ALGORITHMS or not digest:
        why = f"'{raw[:60]}' is not '<{'|'.join(CHECKSUM_ALGORITHMS)}> <base64 digest>'"
        raise tus_error(
            400, "bad_request", f"Upload-Checksum: {why}",
            [{"loc": ["header", "Upload-Checksum"], "msg": why}],
        )  # fmt: skip
    return algo, digest


async def append(
    request: Request,
    uploads: Uploads,
    up: Upload,
    token: str,
    offset: int,
    checksum: tuple[str, bytes] | None,
    content_length: str | None,
    room: Room | None = None,
) -> Response:
    """The PATCH's answer: 204 with the new Upload-Offset (460 for a checksum mismatch)."""
    done = await store_body(request, uploads, up, token, offset, checksum, content_length, room)
    if isinstance(done, Response):
        return done
    headers = {**_TUS, "Upload-Offset": str(done.offset), "Upload-Expires": up.expires_http}
    return Response(status_code=204, headers=headers)


async def store_body(
    request: Request,
    uploads: Uploads,
    up: Upload,
    token: str,
    offset: int,
    checksum: tuple[str, bytes] | None,
    content_length: str | None,
    room: Room | None = None,
) -> Writer | Response:
    """The body at `offset`: the closed Writer (its offset, and cut when the client went
    away), or the 460 answer; ApiError for the rest (nothing of a rejected body is kept)."""
    if offset != up.offset:
        raise tus_error(
            409,
            "offset_mismatch",
            f"Upload-Offset is {offset} but upload {up.id} has {up.offset} bytes; "
            f"send the bytes from {up.offset} on (HEAD /uploads/{up.id} says the offset)",
            {"offset": up.offset, "length": up.length},
        )
    left = up.length - up.offset if up.length is not None else room[0] if room else 0
    if content_length and content_length.isdigit() and int(content_length) > left:
        raise _too_long(up, int(content_length), room)
    writer = await run_in_threadpool(Writer, uploads, up, token, checksum and checksum[0])
    try:
        return await _stream(request, writer, left, checksum, room)
    except LockLost:
        raise tus_error(
            409,
            "upload_lock_lost",
            f"upload {up.id} was deleted or taken over by another PATCH while this one was "
            "writing; HEAD it for the offset",
        ) from None
    except DiskFull as e:
        raise tus_error(
            507,
            "insufficient_storage",
            f"no room on the server's artifact disk ({e}); upload {up.id} kept "
            f"{writer.offset} bytes: resume from there later (HEAD says the offset) or ask "
            "the operator to free space",
            {"offset": writer.offset},
        ) from None
    finally:
        await run_in_threadpool(writer.close)


async def _stream(
    request: Request,
    writer: Writer,
    left: int,
    checksum: tuple[str, bytes] | None,
    room: Room | None,
) -> Writer | Response:
    """Body → file, a buffer at a time; never past Upload-Length, never the whole body in memory."""
    buf, received, cut = bytearray(), 0, False
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > left:
                await run_in_threadpool(writer.rollback)
                raise _too_long(writer.up, received, room, streamed=True)
            buf += chunk
            if len(buf) >= FLUSH_BYTES:
                data, buf = buf, bytearray()
                await run_in_threadpool(writer.write, data)
    except ClientDisconnect:
        cut = writer.cut = True  # keep what arrived (unless a checksum cannot be checked)
    if buf:
        await run_in_threadpool(writer.write, buf)
    if checksum is not None and (cut or not hmac.compare_digest(writer.digest(), checksum[1])):
        await run_in_threadpool(writer.rollback)
        if not cut:
            return error_response(
                460,
                "checksum_mismatch",
                f"the body's {checksum[0]} is not the Upload-Checksum; nothing of it was kept, "
                f"the upload is still at {writer.start} bytes",
                {"offset": writer.start},
                _TUS,
            )
    else:
        await run_in_threadpool(writer.finish)
    return writer


def _too_long(up: Upload, n: int, room: Room | None, *, streamed: bool = False) -> ApiError:
    what = f"the body is at least {n} bytes" if streamed else f"Content-Length is {n}"
    if up.length is None:
        most, limit = room or (0, "max_upload_bytes")
        return tus_error(
            413,
            "payload_too_large" if limit == "max_upload_bytes" else "quota_exceeded",
            f"{what}, but upload {up.id} (no Upload-Length yet, {up.offset} bytes stored) may "
            f"take only {most} more bytes ({limit}); nothing of this request was kept",
            {"offset": up.offset, "limit": limit, "room": most},
        )
    return tus_error(
        400,
        "bad_request",
        f"{what}, past Upload-Length {up.length}: only {up.length - up.offset} bytes are left "
        f"from offset {up.offset}; nothing of this request was kept",
        {"offset": up.offset, "length": up.length},
    )
