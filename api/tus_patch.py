"""One PATCH /uploads/{id} once the route holds the upload's lock: the offset check, then the
body streamed to the file a buffer at a time (api/tus_writer.py) and never past Upload-Length.

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
) -> Response:
    if offset != up.offset:
        raise tus_error(
            409,
            "offset_mismatch",
            f"Upload-Offset is {offset} but upload {up.id} has {up.offset} bytes; "
            f"send the bytes from {up.offset} on (HEAD /uploads/{up.id} says the offset)",
            {"offset": up.offset, "length": up.length},
        )
    left = up.length - up.offset
    if content_length and content_length.isdigit() and int(content_length) > left:
        raise _too_long(up, int(content_length))
    writer = await run_in_threadpool(Writer, uploads, up, token, checksum and checksum[0])
    try:
        return await _stream(request, writer, left, checksum)
    except LockLost:
        raise tus_error(
            409,
            "upload_lock_lost",
            f"upload {up.id} was deleted or taken over by another PATCH while this one was "
            "writing; HEAD it for the offset",
        ) from None
    except DiskFull:
        raise tus_error(
            507,
            "insufficient_storage",
            f"the server's artifact disk is full; upload {up.id} kept {writer.offset} bytes: "
            "retry later from there or ask the operator to free space",
            {"offset": writer.offset},
        ) from None
    finally:
        await run_in_threadpool(writer.close)


async def _stream(
    request: Request, writer: Writer, left: int, checksum: tuple[str, bytes] | None
) -> Response:
    """Body → file, a buffer at a time; never past Upload-Length, never the whole body in memory."""
    buf, received, cut = bytearray(), 0, False
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > left:
                await run_in_threadpool(writer.rollback)
                raise _too_long(writer.up, received, streamed=True)
            buf += chunk
            if len(buf) >= FLUSH_BYTES:
                data, buf = buf, bytearray()
                await run_in_threadpool(writer.write, data)
    except ClientDisconnect:
        cut = True  # keep what arrived (unless a checksum cannot be checked)
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
    headers = {
        **_TUS,
        "Upload-Offset": str(writer.offset),
        "Upload-Expires": writer.up.expires_http,
    }
    return Response(status_code=204, headers=headers)


def _too_long(up: Upload, n: int, *, streamed: bool = False) -> ApiError:
    what = f"the body is at least {n} bytes" if streamed else f"Content-Length is {n}"
    return tus_error(
        400,
        "bad_request",
        f"{what}, past Upload-Length {up.length}: only {up.length - up.offset} bytes are left "
        f"from offset {up.offset}; nothing of this request was kept",
        {"offset": up.offset, "length": up.length},
    )
