"""Limits on what a request may carry, checked before anything parses it.

- `BodyLimit` (ASGI middleware): body size (413, by Content-Length or counted as it streams)
  and JSON nesting depth (422): every route's JSON body goes through it. Only a multipart
  body sent to an upload route (POST /datasets) gets the upload limit, and so does a tus
  PATCH /uploads/{id} or POST /uploads (creation-with-upload) body
  (application/offset+octet-stream, streamed to disk).
- `check_stream_id`: a Redis stream id (`<ms>-<seq>`, both unsigned 64-bit) from a query
  parameter or header, 422 naming it otherwise.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response, invalid

# Multipart framing (boundaries, part headers, the name field) on top of the file itself.
MULTIPART_SLACK = 64 * 1024
# A job spec nests ~5 levels and a sweep a few more; json.loads, pydantic and deepcopy
# recurse per level and fail (500s) somewhere between ~255 and ~1000.
MAX_JSON_DEPTH = 64

# A JSON string, escapes included; the closing quote is optional so an unterminated string
# ends the match instead of failing it (a failing match backtracks: quadratic on `"\"\"\"...`).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1

U64_MAX = 2**64 - 1
_STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets in strings do not count).

    No recursion and no Python loop over the bytes: a regex drops the strings, translate keeps
    the brackets, and accumulate sums their ±1 steps.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # cannot be too deep: the common case costs two scans
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def check_stream_id(value: str, loc: list[str | int]) -> str:
    """The value if it is a Redis stream id `<ms>-<seq>` (unsigned 64-bit each); 422 at loc otherwise."""
    m = _STREAM_ID.match(value)
    if m is None or int(m[1]) > U64_MAX or int(m[2]) > U64_MAX:
        shown = value if len(value) <= 48 else value[:45] + "..."
        raise invalid(
            loc,
            f"'{shown}' is not a stream id like 1700000000000-0 "
            f"(<milliseconds>-<sequence>, each at most {U64_MAX})",
        )
    return value


def _is_json(ctype: str) -> bool:
    """FastAPI parses a body as JSON without a Content-Type, or with application/json or +json."""
    media = ctype.split(";", 1)[0].strip()
    return (
        not media
        or media == "application/json"
        or (media.startswith("application/") and media.endswith("+json"))
    )


# The only routes that take a file: every other body, multipart or not, gets max_body_bytes
# (a JSON spec sent as multipart/form-data must not get the 64 MiB upload limit).
UPLOAD_ROUTES = frozenset({("POST", "/datasets")})


def _is_upload_route(scope: Scope) -> bool:
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return (scope.get("method", ""), path.rstrip("/") or "/") in UPLOAD_ROUTES


def _is_tus_patch(scope: Scope, ctype: str) -> bool:
    """A tus PATCH /uploads/{id} or POST /uploads (creation-with-upload) with an
    application/offset+octet-stream body: up to max_upload_bytes."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    method = scope.get("method")
    return (
        (method == "PATCH" and path.startswith("/uploads/"))
        or (method == "POST" and path.rstrip("/") == "/uploads")
    ) and ctype.split(";", 1)[0].strip() == "application/offset+octet-stream"


class BodyLimit:
    """413 above the size limit (uploads get their own), 422 for JSON nested too deep."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
        upload = ctype.startswith("multipart/form-data") and _is_upload_route(scope)
        limit = self.max_upload + MULTIPART_SLACK if upload else self.max_body
        if _is_tus_patch(scope, ctype):
            upload, limit = True, self.max_upload  # streamed to disk by api/routes/uploads.py
        if _is_json(ctype):
            receive = _depth_checked(receive)
        raw = headers.get(b"content-length")
        if raw is None:
            await self._counted(scope, receive, send, upload, limit)
            return
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            resp = error_response(400, "bad_request", "Content-Length is not a number")
            await resp(scope, receive, send)
            return
        if length > limit:
            what = "upload" if upload else "request body"
            resp = error_response(
                413,
                "payload_too_large",
                f"the {what} is {length} bytes, above the {limit} byte limit",
                {"limit": limit, "length": length},
            )
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _counted(
        self, scope: Scope, receive: Receive, send: Send, upload: bool, limit: int
    ) -> None:
        """No Content-Length (chunked): count the bytes as they stream; 413 past the limit."""
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    what = "upload" if upload else "request body"
                    raise _TooLarge(413, f"the {what} is above the {limit} byte limit")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge as e:
            if started:
                raise
            resp = error_response(413, "payload_too_large", str(e.detail), {"limit": limit})
            await resp(scope, receive, send)


def _depth_checked(receive: Receive) -> Receive:
    """receive, holding the body's chunks until the last one: 422 if the whole nests too deep."""
    chunks: list[bytes] = []

    async def checking_receive() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                depth = json_depth(b"".join(chunks))
                chunks.clear()
                if depth > MAX_JSON_DEPTH:
                    raise _TooDeep(depth)
        return message

    return checking_receive


class _TooLarge(HTTPException):
    """An HTTPException so that FastAPI's body parsing re-raises it (as a 413) unchanged."""


class _TooDeep(HTTPException):
    """422 for a JSON body nested past MAX_JSON_DEPTH; re-raised by FastAPI like _TooLarge."""

    def __init__(self, depth: int) -> None:
        msg = (
            f"the JSON body nests {depth} levels deep; at most {MAX_JSON_DEPTH} levels "
            "of arrays and objects are accepted"
        )
        super().__init__(422, msg)
        self.details: list[dict[str, Any]] = [
            {
                "loc": ["body"],
                "msg": msg,
                "limit": "max_json_depth",
                "max_json_depth": MAX_JSON_DEPTH,
                "depth": depth,
            }
        ]
